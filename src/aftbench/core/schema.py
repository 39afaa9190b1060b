"""The config schema, shipped inside the package (config.schema.yaml; the workflow's
workflow/schemas/config.schema.yaml links to it), the defaults it holds (the one place every
default lives), a setting as a job sees it, and `ConfigError`, the one error every config
problem is reported with (each naming its key path). Light: no torch, no numpy."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from importlib import resources

# `train` keys given per dataset id: resolved into each dataset's `steps` / `fit_on` by
# aftbench.sweep.runs.run_train_overrides, never part of a run's own train settings.
PER_DATASET_TRAIN_KEYS = ("step_multiplier", "fit_on_by_dataset")


@lru_cache(maxsize=1)
def schema() -> dict:
    """The config schema, read from the installed package (works without a checkout)."""
    import yaml

    return yaml.safe_load(resources.files(__package__).joinpath("config.schema.yaml").read_text())


def defaults(section: str) -> dict:
    """The schema's `default:` of every key of one config section (`train`, `extract`, `launch`,
    `resources`, `probe`, `scores`, `select`, `cost`, and `method`: a training method's entry): the one place defaults live. A consumer overlays what the user set."""
    where = {
        "train": ["$defs", "train"],
        "resources": ["$defs", "resources"],
        "probe": ["$defs", "probe"],
        "extract": ["properties", "extract"],
        "launch": ["properties", "launch"],
        "scores": ["properties", "scores"],
        "cost": ["properties", "cost"],
        "track_options": ["properties", "track_options"],
        "select": ["$defs", "select", "properties", "select"],
        "method": ["properties", "methods", "additionalProperties", "oneOf", 0],
    }[section]
    node = schema()
    for key in where:
        node = node[key]
    return {k: copy.deepcopy(v["default"]) for k, v in node["properties"].items() if "default" in v}


def setting(config: dict, section: str, key: str | None = None):
    """One setting as a job sees it: the user's value, else the schema's default
    (`setting(c, "train", "threads")`; a top-level key: `setting(c, "launcher")`)."""
    if key is None:
        return config.get(section, schema()["properties"][section].get("default"))
    return config.get(section, {}).get(key, defaults(section)[key])


class ConfigError(ValueError):
    """A config that cannot run; `problems` lists every problem found, each naming its key path."""

    def __init__(self, problems: list[str] | str, header: str = "config is not valid"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = self.problems[0] if len(self.problems) == 1 else f"{header}: {len(self.problems)} problems"
        super().__init__(
            text if len(self.problems) == 1 else text + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


# What YAML 1.2 reads as a number but PyYAML (YAML 1.1, which Snakemake uses) leaves as text: an
# exponent without a dot, `1e-3`.
YAML11_TEXT_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")
# Numbers that arrive as text: those, and every number inside a mapping given on the command line
# (`--config 'launch={"pack": 8}'`: Snakemake reads nested values as text). Where the schema expects
# a number, such a string is that number.
TEXT_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def _key_path(path) -> str:
    """A key path as the config reads: `sweeps.tiny[0].beta.aft[1]`."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _text_numbers(err):
    """(path, value) of each string the schema wanted as a number, in `err` and its alternatives."""
    wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    if (
        err.validator == "type"
        and {"number", "integer"} & set(wanted)
        and isinstance(err.instance, str)
        and TEXT_NUMBER.fullmatch(err.instance.strip())
    ):
        value = float(err.instance)
        yield list(err.absolute_path), int(value) if "number" not in wanted and value.is_integer() else value
    for sub in err.context or []:
        yield from _text_numbers(sub)


def yaml12_numbers(config: dict) -> dict:
    """`config`, or a copy of it in which every number that arrived as text where the schema
    expects a number (`1e-3` to PyYAML, `8` inside a `--config` mapping) is that number."""
    import jsonschema

    if not isinstance(config, dict):
        return config
    validator, out = jsonschema.Draft202012Validator(schema()), None
    for err in validator.iter_errors(config):
        for path, value in _text_numbers(err):
            if out is None:
                out = copy.deepcopy(config)
            node = out
            for p in path[:-1]:
                node = node[p]
            node[path[-1]] = value
    return config if out is None else out


def _schema_message(err) -> str:
    """One schema error as `key.path: message`; for `oneOf`/`anyOf`, the alternative that got
    furthest says what is wrong (not "is not valid under any of the given schemas")."""
    import jsonschema

    if err.context:
        # The alternatives a discriminator (`kind: {const: train}`) rules out say nothing useful:
        # report the errors of the closest alternative that remains.
        alternatives: dict = {}
        for sub in err.context:
            alternatives.setdefault(sub.schema_path[0], []).append(sub)
        fitting = [errs for errs in alternatives.values() if not any(e.validator == "const" for e in errs)]
        # an alternative of another type altogether (a number where a list was given) says nothing either
        typed = [errs for errs in fitting if not any(e.validator == "type" and not e.relative_path for e in errs)]
        fitting = typed or fitting
        if fitting:
            return "; ".join(dict.fromkeys(_schema_message(e) for e in min(fitting, key=len)))
        return _schema_message(jsonschema.exceptions.best_match(err.context))
    return f"{_key_path(err.absolute_path)}: {err.message}"


def schema_problems(config: dict) -> list[str]:
    """Every way `config` breaks the schema, each with its key path."""
    import jsonschema

    if not isinstance(config, dict):
        return [f"<top level>: a config must be a mapping, got {type(config).__name__}"]
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(_schema_message(e) for e in errors))


def validate_schema(config: dict) -> None:
    problems = schema_problems(config)
    if problems:
        raise ConfigError(problems, header="config does not match the schema (aftbench/core/config.schema.yaml)")
