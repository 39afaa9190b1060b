"""What the workflow needs to know about the four registries (datasets.LOADERS,
teachers.BACKENDS, students.ARCHS, methods.PENALTIES) to check a config and build the DAG:
their names, the arguments each entry accepts (aftbench.core.declare), which input each teacher
and student reads, and where a penalty's Φ comes from.

Those registries live in modules that import torch (~2.5 s). Building a 5,000-job DAG should
not pay that, so this module reads a summary computed from the real registries and cached per
package state (every source file's size and mtime) and plugin state (aftbench.core.plugins: the
active plugins and their files): any edit to either recomputes it, so it is never stale. The registries stay the one place where an entry is defined.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from aftbench.core import plugins

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole aftbench package


def _cache_path() -> Path:
    h = hashlib.sha256()
    for p in sorted(PACKAGE_DIR.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(PACKAGE_DIR)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    h.update(plugins.fingerprint().encode())
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aftbench"
    return root / f"registries-{h.hexdigest()[:16]}.json"


def compute() -> dict:
    """The summary, from the registries themselves (imports torch)."""
    from aftbench.data.registry import LOADERS
    from aftbench.methods.registry import PENALTIES
    from aftbench.students.registry import ARCHS
    from aftbench.teachers.registry import BACKENDS

    plugins.import_active()

    def backend(cls, args: dict) -> dict:  # a `modality` argument, where the backend takes one, decides its input
        arg = args["params"].get("modality", {}).get("default")
        return {"modality": cls.modality, "modality_arg_default": arg, "args": args, "pretrained": cls.pretrained}

    backend_args, arch_args = BACKENDS.summary(), ARCHS.summary()
    return {
        "loaders": LOADERS.summary(),
        "backends": {name: backend(cls, backend_args[name]) for name, cls in BACKENDS.items()},
        "archs": {name: {"modality": cls.modality, "args": arch_args[name]} for name, cls in ARCHS.items()},
        "penalties": {name: cls.target_source if cls is not None else None for name, cls in PENALTIES.items()},
        "penalty_args": PENALTIES.summary(),
    }


def describe() -> dict:
    """The summary for the active plugins (aftbench.core.plugins.activate)."""
    return _describe(plugins.active())


@lru_cache(maxsize=4)
def _describe(active: tuple[str, ...]) -> dict:
    path = _cache_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    summary = compute()
    try:  # best effort: a read-only home only costs the recomputation next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(summary, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
    return summary


describe.cache_clear = _describe.cache_clear


def teacher_modality(spec: dict) -> str:
    """Which input a teacher reads: its `modality` argument where the backend takes one, else
    the backend's own."""
    b = describe()["backends"][spec["backend"]]
    if b["modality_arg_default"] is not None:
        return spec.get("args", {}).get("modality", b["modality_arg_default"])
    return b["modality"]


def teacher_pretrained(spec: dict) -> bool:
    """Whether a teacher carries pre-trained knowledge: its backend's (a noise or random-projection
    control never does) and its `pretrained` argument (false or null: random init, a control)."""
    b = describe()["backends"][spec["backend"]]
    return bool(b.get("pretrained", True)) and spec.get("args", {}).get("pretrained", True) not in (False, None)


def target_source(penalty: str) -> str | None:
    """Where a penalty's Φ comes from when it is not the cached teacher features."""
    return describe()["penalties"].get(penalty)
