"""One training run per ``output_dir``: a lock file that a second run started on the same folder refuses.

Two runs writing ``checkpoint-N`` folders into one ``output_dir`` overwrite each other's checkpoints and
rotate each other's away, and ``--resume_from_checkpoint latest`` then resumes a mixture. The lock is
``output_dir/_hf_l2mt.lock``, a small JSON file with the holder's pid, host name and start time. It is
created with ``O_CREAT | O_EXCL``, so of two runs starting at once exactly one gets it, and removed when
training ends, also on an error. A lock left by a process that no longer runs on this host (killed with
SIGKILL, or the machine rebooted) is taken over with a warning; a lock from another host is refused,
since whether its run is alive cannot be told from here. Two exceptions let a restarted job's same command
run: a lock holding this process's own id is stale (a container restarted on the same host often gets the
same process id), and so is one written by an earlier start of this SLURM job (the same ``SLURM_JOB_ID``
with a lower ``SLURM_RESTART_COUNT``: SLURM requeues a job once that start has ended, maybe on another
node). The leading underscore keeps the file out of transformers' Hub uploads (they skip ``_*``).
"""

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("hf_l2mt")

LOCK_FILE = "_hf_l2mt.lock"


class OutputDirInUseError(ValueError):
    """Another live run holds the lock of this ``output_dir``."""


def lock_path(output_dir: str) -> str:
    return os.path.join(output_dir, LOCK_FILE)


def read_holder(path: str) -> dict | None:
    """The lock's content (``pid``, ``host``, ``started``), or ``None`` when it is gone or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            holder = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def pid_is_running(pid: int) -> bool:
    """Whether a process with this id runs on this host (``os.kill(pid, 0)`` checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def slurm_start() -> dict:
    """This SLURM job and how often it was requeued; empty outside SLURM."""
    if "SLURM_JOB_ID" not in os.environ:
        return {}
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", 0))
    return {"slurm_job_id": os.environ["SLURM_JOB_ID"], "slurm_restart_count": restarts}


def holder_is_alive(holder: dict | None) -> bool:
    """An unreadable lock counts as dead: its writer died between creating and filling it."""
    if holder is None:
        return False
    this_start = slurm_start()
    if this_start and holder.get("slurm_job_id") == this_start["slurm_job_id"] and (
        holder.get("slurm_restart_count", 0) < this_start["slurm_restart_count"]
    ):
        return False  # an earlier start of this job, which SLURM ended before requeueing it
    if holder.get("host") != socket.gethostname():
        return True
    return holder["pid"] != os.getpid() and pid_is_running(holder["pid"])


def describe(holder: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder['pid']} on host {holder.get('host')!r}, started {started}"


def _create(path: str) -> bool:
    """Create the lock holding this process; ``False`` if the file already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    content = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), **slurm_start()}
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    return True


def acquire(output_dir: str) -> str:
    """Take the lock of ``output_dir`` (created if needed) and return its path.

    Raises ``OutputDirInUseError`` naming the folder, the holder and what to do when a live run holds it.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = lock_path(output_dir)
    while not _create(path):
        holder = read_holder(path)
        if holder_is_alive(holder):
            where = "this host" if holder["host"] == socket.gethostname() else f"host {holder['host']!r}"
            raise OutputDirInUseError(
                f"output_dir: {output_dir!r} is in use by another training run ({describe(holder)}; lock file "
                f"{path}). Wait for that run to end or stop it, or choose another output_dir; if no such run is "
                f"alive on {where}, delete the lock file."
            )
        # Rename before removing, so that of two runs taking over the same stale lock only one removes it.
        stale = f"{path}.{os.getpid()}.stale"
        try:
            os.replace(path, stale)
        except FileNotFoundError:
            continue
        os.remove(stale)
        gone = describe(holder) if holder is not None else "unreadable"
        logger.warning("output_dir %s: taking over the lock of a run that no longer runs (%s)", output_dir, gone)
    return path


def release(path: str) -> None:
    """Remove the lock if this process still holds it."""
    holder = read_holder(path)
    if holder is not None and holder["pid"] == os.getpid() and holder.get("host") == socket.gethostname():
        os.remove(path)


@contextmanager
def hold(output_dir: str, is_main_process: bool, from_main: Callable[[object], object] | None = None) -> Iterator[None]:
    """Hold the lock of ``output_dir`` for the block: only the main process takes it.

    ``from_main`` hands the main process's value to every process (a broadcast under several processes), so
    that all of them raise the same ``OutputDirInUseError`` instead of the others waiting for a main process
    that stopped.
    """
    path, refusal = None, None
    if is_main_process:
        try:
            path = acquire(output_dir)
        except OutputDirInUseError as err:
            refusal = str(err)
    if from_main is not None:
        refusal = from_main(refusal)
    if refusal is not None:
        raise OutputDirInUseError(refusal)
    try:
        yield
    finally:
        if path is not None:
            release(path)
