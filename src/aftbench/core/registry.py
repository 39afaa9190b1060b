"""One registry type for the four registries (dataset loaders, teacher backends, student archs,
penalties): a name -> entry mapping (an entry is a class or a function) that builds an entry from
its config arguments, says "unknown X; known: ..." the same way everywhere, and checks the
arguments against what the entry declares (aftbench.core.declare) before building it.
Registering one more is one line in the module that owns the registry."""

from __future__ import annotations

from aftbench.core.declare import check_args, summarize


class Registry(dict):
    """`kind` names the entries in messages ("teacher backend"); `injected` are the arguments
    the builder passes itself (never config.yaml), e.g. a student's `n_classes`."""

    def __init__(self, kind: str, entries: dict, injected: tuple[str, ...] = ()):
        super().__init__(entries)
        self.kind, self.injected = kind, injected

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
