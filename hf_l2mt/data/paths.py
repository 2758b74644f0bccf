"""What is wrong with a source path, said so that the user knows what to do.

``open`` reports a missing file, a folder and a broken symbolic link alike as "not found"; these
checks tell them apart and point at what is there instead.
"""

import errno
import os

_SHOWN_NAMES = 5


def check_source_file(path: str) -> None:
    """``FileNotFoundError`` / ``IsADirectoryError`` / ``PermissionError`` naming ``path`` and what to do."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a file ({_contents(path)}); give the path of the file inside it")
    if os.path.islink(path) and not os.path.exists(path):
        raise FileNotFoundError(f"{path} is a symbolic link to {os.readlink(path)}, {_link_problem(path)}; "
                                "point it at the file, or give the file itself")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {missing_hint(path)}")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise PermissionError(
            f"{path}: permission denied: this user may not read it; "
            "change its permissions (chmod a+r) or copy it somewhere readable"
        ) from None


def missing_hint(path: str) -> str:
    """Why ``path`` names nothing: the first folder on it that is missing, or what its folder holds."""
    folder = os.path.dirname(os.path.abspath(path))
    relative = "" if os.path.isabs(path) else f"relative paths are read from {os.getcwd()}; "
    missing = folder
    while not os.path.isdir(os.path.dirname(missing)) and os.path.dirname(missing) != missing:
        missing = os.path.dirname(missing)
    if not os.path.isdir(folder):
        return f"{relative}the folder {missing} does not exist; check the path"
    ending = os.path.splitext(path)[1]
    alike = sorted(name for name in os.listdir(folder) if ending and name.lower().endswith(ending.lower()))
    there = f"files there ending in {ending}: {_names(alike)}" if alike else f"the folder {folder}: {_contents(folder)}"
    return f"{relative}{there}; check the path"


def _link_problem(path: str) -> str:
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "which leads back to itself (a loop of links)"
    return "which does not exist"


def _contents(folder: str) -> str:
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        return f"unreadable: {error.strerror}"
    return f"it holds {_names(names)}" if names else "it is empty"


def _names(names) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    return shown + (f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else "")
