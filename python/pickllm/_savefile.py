"""Writing a snapshot file atomically, and cleaning up after writers that were killed.

``save(path)`` writes a temporary file next to the target, fsyncs it, renames it over the target
and fsyncs the folder, so a crash leaves the old file or the new one, never half of one.

- A symlink is written through: the file it points to is replaced and the link is kept, as
  deployments often link a stable name to a data volume.
- Anything else that is not a regular file (a folder, a FIFO, a device such as ``/dev/null``) is
  refused with :class:`~pickllm.errors.SnapshotError` and left untouched.
- Temporary files are named ``.<name>.pickllm-tmp.<pid>.<random>``. A process killed while
  saving leaves its file behind; the next save or load of the same path removes those whose
  process is gone (processes of this machine, as a pid says nothing about other hosts sharing
  the folder).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from pickllm.errors import SnapshotError

__all__ = ["remove_stale_temporaries", "write_atomically"]

_MARK = "pickllm-tmp"


def write_atomically(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Replace the regular file at ``path`` (or behind the symlink at ``path``) with what
    ``write`` writes into the (existing, empty) temporary file whose path it is given."""
    target, mode = _target(Path(path))
    remove_stale_temporaries(target)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.{_MARK}.{os.getpid()}.", dir=target.parent
    )
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        write(temporary)
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _target(path: Path) -> tuple[Path, int | None]:
    """The file to replace (symlinks resolved) and its permission bits, if it exists."""
    target = Path(os.path.realpath(path))
    try:
        status = target.stat()
    except FileNotFoundError:
        return target, None
    if not stat.S_ISREG(status.st_mode):
        raise SnapshotError(
            f"cannot save to {os.fspath(path)!r}: it is not a regular file (a folder, FIFO or "
            f"device), so it is left as it is"
        )
    return target, stat.S_IMODE(status.st_mode)


def remove_stale_temporaries(path: str | os.PathLike[str]) -> None:
    """Remove temporary files of ``path`` left by processes that no longer run."""
    target = Path(os.path.realpath(path))
    with contextlib.suppress(OSError):
        for leftover in target.parent.glob(f".{_glob_escape(target.name)}.{_MARK}.*"):
            pid = leftover.name[len(f".{target.name}.{_MARK}.") :].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    leftover.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
