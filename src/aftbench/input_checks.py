"""Checks of a config's values that its schema cannot express, each problem with its key path:
every number finite, no control character in a string that reaches a job script, every run's
batch no larger than its training set, and no config that asks Snakemake to run embedded code.
aftbench.config.check_config runs them before any job."""

from __future__ import annotations

import math
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _walk(node, where: str):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}[{i}]")
    else:
        yield where, node


def non_finite_numbers(config: dict) -> list[str]:
    """NaN or ±Inf anywhere (`beta: .nan`, `lr: .inf` pass a schema's `minimum`)."""
    return [
        f"{where}: {value!r} is not a finite number"
        for where, value in _walk(config, "")
        if isinstance(value, float) and not math.isfinite(value)
    ]


def control_characters(config: dict) -> list[str]:
    """A newline or other control character in any string of `launch:` (it becomes its own line of
    the generated sbatch script) or in any id or path the rules put on a command line."""
    problems = []
    for where, value in _walk(config, ""):
        if isinstance(value, str) and _CONTROL.search(value):
            problems.append(
                f"{where}: {value!r} holds a control character (newline, tab, ...); not allowed in a config value"
            )
    for where, key in _keys(config, ""):
        if _CONTROL.search(key):
            problems.append(f"{where}: the key {key!r} holds a control character; not allowed in a config")
    return problems


def _keys(node, where: str):
    if isinstance(node, dict):
        for k, v in node.items():
            yield where or "<top level>", str(k)
            yield from _keys(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _keys(v, f"{where}[{i}]")


def embedded_code(config: dict) -> list[str]:
    """Snakemake evaluates a config file marked `__use_yte__: true` as a YTE template, running its
    Python while it loads the file, before aftbench sees it: a config file is trusted like code.
    aftbench refuses such files, so what it validates is what runs."""
    if "__use_yte__" in config:
        return [
            "__use_yte__: YTE templates run embedded Python when Snakemake loads the config file (before any "
            "check); aftbench does not accept them: write the config out as plain YAML"
        ]
    return []


def batch_sizes(config: dict, train_defaults: dict) -> list[str]:
    """Every run's batch must fit its training set: a batch is never silently clamped."""
    problems = []
    for name, blocks in config.get("sweeps", {}).items():
        for i, b in enumerate(blocks):
            train = {**train_defaults, **config.get("train", {}), **b.get("train", {})}
            bs = train.get("batch_size")
            for did in b.get("datasets", []):
                n_train = config.get("datasets", {}).get(did, {}).get("n_train")
                if isinstance(bs, int) and isinstance(n_train, int) and bs > n_train:
                    where = (
                        f"sweeps.{name}[{i}].train.batch_size"
                        if "batch_size" in b.get("train", {})
                        else "train.batch_size"
                    )
                    problems.append(
                        f"{where}: {bs} exceeds datasets.{did}.n_train ({n_train}) in sweeps.{name}[{i}]; "
                        f"lower the batch size or raise n_train"
                    )
    return problems
