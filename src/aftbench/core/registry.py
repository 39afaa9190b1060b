"""One registry type for the four registries (dataset loaders, teacher backends, student archs,
penalties): a name -> entry mapping (an entry is a class or a function) that builds an entry from
its config arguments, says "unknown X; known: ..." the same way everywhere, and checks the
arguments against what the entry declares (aftbench.core.declare) before building it.
Registering one more is one line in the module that owns the registry, or a `register`
decorator in a plugin (aftbench.plugins)."""

from __future__ import annotations

import re

from aftbench.core.declare import check_args, summarize


class Registry(dict):
    """`kind` names the entries in messages ("teacher backend"); `injected` are the arguments
    the builder passes itself (never config.yaml), e.g. a student's `n_classes`."""

    def __init__(self, kind: str, entries: dict, injected: tuple[str, ...] = (), base: type | None = None):
        super().__init__(entries)
        self.kind, self.injected, self.base = kind, injected, base

    def register(self, name: str):
        """Decorator: add an entry under `name` (a plugin's, aftbench.plugins). A taken name, an
        id that cannot be one, or a class that is not a `base` is refused, naming the entry."""

        def add(entry):
            what = f"{self.kind} {name!r} ({getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', entry)})"
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
                raise ValueError(f"{what}: a name is lower-case letters, digits and underscores (it is a config id)")
            if name in self and self[name] is not entry:
                old = self[name]
                raise ValueError(
                    f"{what}: the name is taken by {getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)}; "
                    f"register it under another name"
                )
            if self.base is not None and not (isinstance(entry, type) and issubclass(entry, self.base)):
                raise TypeError(f"{what}: must be a subclass of {self.base.__module__}.{self.base.__qualname__}")
            if self.base is None and not callable(entry):
                raise TypeError(f"{what}: must be callable")
            self[name] = entry
            return entry

        return add

    def entry(self, name: str):
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {sorted(self)}")
        return self[name]

    def build(self, name: str, args: dict | None = None, **injected):
        """entry(**injected, **args), after checking `args` against the entry's declaration."""
        entry, args = self.entry(name), dict(args or {})
        if entry is None:  # a name that builds nothing (the `none` penalty)
            return None
        problems = check_args(summarize(entry, self.injected), args, "")
        if problems:
            raise ValueError(f"{self.kind} {name!r}: " + "; ".join(p.removeprefix(".") for p in problems))
        return entry(**injected, **args)

    def summary(self) -> dict:
        """Each entry's declaration, as JSON (aftbench.sweep.summary caches it)."""
        return {name: summarize(entry, self.injected) for name, entry in self.items() if entry is not None}
