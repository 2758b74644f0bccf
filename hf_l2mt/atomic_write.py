"""Write a file so that a reader sees either the old file or the complete new one, never a half-written one."""

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path`` in one rename.

    The temporary name carries the process id, so several processes may write the same file at once
    (the last rename wins). If the block raises, the temporary file is removed and ``path`` is left as
    it was.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
