"""Atomic writes and small file helpers.

Every artifact is written under a temporary name in the same directory and then renamed, so a
killed job never leaves a file that looks complete (rename is atomic on POSIX filesystems).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path

# Errors of the disk, not of the caller's data: said with the path and the space left.
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix: numpy, matplotlib and safetensors pick the format from it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it owner-only; results are shared like any file
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in _WRITE_ERRORS:
            raise
        raise OSError(err.errno, f"writing {path} failed: {err.strerror or err}; {_free_space(path.parent)}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _free_space(folder: Path) -> str:
    import shutil

    try:
        return f"{shutil.disk_usage(folder).free / 1e9:.2f} GB free on the filesystem of {folder}"
    except OSError:
        return f"free space of {folder} unknown"


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """An exclusive lock (flock) on the file `path`, created if missing, held for the block: one
    process at a time among those that take it (aftbench.launch: the shared SLURM status, the pack queue)."""
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_json(path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt JSON in {path}: {err}") from None


def file_sha256(*paths, chunk: int = 1 << 20) -> str:
    """SHA-256 of the files' bytes, concatenated in the order given."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()
