"""Atomic artifact writes: all or nothing, with the permissions of any other file."""

import stat

import pytest

import aftbench.core.io
from aftbench.core.io import atomic_path, write_text


def test_atomic_write_gets_the_umask_permissions_not_owner_only(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    # mkstemp creates 0600; an artifact must get what open() would give it under this umask
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~aftbench.core.io._UMASK


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.npz") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
