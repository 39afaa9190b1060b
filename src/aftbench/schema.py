"""The config schema, shipped inside the package (config.schema.yaml; the workflow's
workflow/schemas/config.schema.yaml links to it), and the defaults it holds: the one place
every default lives. Light: no torch, no numpy."""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def schema() -> dict:
    """The config schema, read from the installed package (works without a checkout)."""
    import yaml

    return yaml.safe_load(resources.files(__package__).joinpath("config.schema.yaml").read_text())


def defaults(section: str) -> dict:
    """The schema's `default:` of every key of one config section (`train`, `extract`, `launch`,
    `resources`, `probe`, `scores`, `select`, `cost`): the one place defaults live. A consumer overlays what the user set."""
    where = {
        "train": ["$defs", "train"],
        "resources": ["$defs", "resources"],
        "probe": ["$defs", "probe"],
        "extract": ["properties", "extract"],
        "launch": ["properties", "launch"],
        "scores": ["properties", "scores"],
        "cost": ["properties", "cost"],
        "select": ["$defs", "select", "properties", "select"],
    }[section]
    node = schema()
    for key in where:
        node = node[key]
    return {k: copy.deepcopy(v["default"]) for k, v in node["properties"].items() if "default" in v}
