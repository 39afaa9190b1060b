"""What is registered, and what each entry accepts: every teacher backend, student arch, transfer
method (penalty) and dataset loader (`python -m aftbench list [teachers|students|methods|datasets]`).
Read from the registries themselves: each entry's parameters (type, default, required), its
declared choices and patterns, and the packages it needs (aftbench.core.declare)."""

from __future__ import annotations

import inspect

from aftbench.data.registry import LOADERS
from aftbench.methods.registry import PENALTIES
from aftbench.students.registry import ARCHS
from aftbench.teachers.registry import BACKENDS

REGISTRIES = {
    "teachers": (BACKENDS, "config.yaml `teachers:` entries' `backend` (or a one-line spec)"),
    "students": (ARCHS, "config.yaml `students:` entries' `arch`"),
    "methods": (PENALTIES, "config.yaml `methods:` entries' `penalty` (kind: train)"),
    "datasets": (LOADERS, "config.yaml `datasets:` entries' `loader`"),
}


def _param(name: str, p: dict, decl: dict) -> str:
    kind = "|".join(p["types"]) or "any"
    text = f"{name}: {kind}" + (" (required)" if p["required"] else f" = {p['default']!r}")
    if name in decl["choices"]:
        text += f", one of {decl['choices'][name]}"
    if name in decl["patterns"]:
        text += f", matching {decl['patterns'][name]}"
    return text


def _summary_line(entry, width: int = 150) -> str:
    """The entry's own docstring (not one it inherits), else its module's: its first paragraph,
    cut at a word near `width` characters."""
    doc = entry.__dict__.get("__doc__") if inspect.isclass(entry) else entry.__doc__
    doc = doc or (inspect.getmodule(entry).__doc__ or "")
    text = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    return text if len(text) <= width else text[:width].rsplit(" ", 1)[0] + " …"


def _need(n: dict) -> str:
    when = ", ".join(f"{k}: {v}" for k, v in n.get("when", {}).items())
    return f"pip install {n['pip']}" + (f" (when {when})" if when else "")


def describe(kind: str) -> str:
    """One registry as text: each entry, its first docstring line and what it accepts."""
    registry, where = REGISTRIES[kind]
    summaries = registry.summary()
    lines = [f"{kind} (each a {registry.kind}, named by {where}):"]
    for name in sorted(registry):
        entry = registry[name]
        if entry is None:
            lines.append(f"  {name}: builds nothing (no penalty)")
            continue
        doc = _summary_line(entry)
        module = getattr(entry, "__module__", "") or ""
        origin = "" if module.split(".")[0] == "aftbench" else f" [plugin {module}]"
        lines.append(f"  {name}{origin}: {doc}" if doc else f"  {name}{origin}")
        s = summaries[name]
        params = [_param(n, p, s) for n, p in s["params"].items()]
        lines.append("      accepts: " + ("; ".join(params) if params else "no arguments"))
        if s["needs"]:
            lines.append("      needs: " + "; ".join(_need(n) if isinstance(n, dict) else str(n) for n in s["needs"]))
    return "\n".join(lines)


def catalog(kinds: list[str] | None = None) -> str:
    return "\n\n".join(describe(k) for k in (kinds or list(REGISTRIES)))
