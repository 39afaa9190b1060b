"""Plugins: your own transfer methods, teacher backends, students and dataset loaders, without a
fork. A plugin is an importable Python module whose import registers entries with the register
decorators of `aftbench.plugins` (the same registries the built-in entries live in). It is named
in config.yaml's `plugins:` list, or installed with an entry point in the group
`aftbench.plugins` (loaded whenever aftbench builds a registry).

This module is the light half: which plugins are active, where their source files are (found
without importing them, so building the DAG stays torch-free while the registry summary is
cached), and importing them when the registries are built. Every job command gets the same list
(`python -m aftbench --plugins a,b CMD`), so a job on a cluster node imports what the DAG planned.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "aftbench.plugins"
_active: tuple[str, ...] = ()
_imported: set[str] = set()


class PluginError(ValueError):
    """A plugin that cannot be found or imported; the message names it and the fix."""


def installed() -> list[str]:
    """The modules installed packages declare in the entry-point group `aftbench.plugins`."""
    return [ep.value.split(":")[0].strip() for ep in entry_points(group=ENTRY_POINT_GROUP)]


def activate(names: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """Make `names` (config.yaml's `plugins:`) and every installed plugin the active ones, in
    that order without repeats. Returns them."""
    global _active
    _active = tuple(dict.fromkeys([*names, *installed()]))
    return _active


def active() -> tuple[str, ...]:
    return _active


def _source_files(name: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as err:
        raise PluginError(f"plugins: {name!r} cannot be found ({err}); {_FIX}") from None
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        raise PluginError(f"plugins: no module {name!r} on the Python path; {_FIX}")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every module in it
        return sorted(origin.parent.rglob("*.py"))
    return [origin]


_FIX = (
    "put the folder holding it on PYTHONPATH (the jobs inherit it; on SLURM, also on the compute "
    "nodes), pip install the package that provides it, or remove it from config.yaml's `plugins:`"
)


def fingerprint() -> str:
    """A digest of the active plugins' names and source files (size and mtime): the registry
    summary cached for one state of the plugins is never read for another."""
    h = hashlib.sha256()
    for name in _active:
        h.update(f"{name}\n".encode())
        for p in _source_files(name):
            st = p.stat()
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def import_active() -> None:
    """Import every active plugin (once per process): its register decorators run."""
    for name in _active:
        if name in _imported:
            continue
        _source_files(name)  # a missing module: the message with the fix, not a bare ImportError
        try:
            importlib.import_module(name)
        except PluginError:
            raise
        except Exception as err:
            raise PluginError(f"plugins: importing {name!r} failed: {type(err).__name__}: {err}") from err
        _imported.add(name)
