"""Checks of a config's values that its schema cannot express, each problem with its key path:
every number finite, no control character in a string that reaches a job script, every run's
batch no larger than its training set, and no config that asks Snakemake to run embedded code.
aftbench.config.check.check_config runs them before any job."""

from __future__ import annotations

import math
import re
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
YTE_MARKER = "__use_yte__"  # Snakemake's key that turns a config file into a YTE template


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
    """A newline or other control character in a string that reaches a job script or a path: every
    value under `launch:` (a newline in an sbatch option becomes its own line of the generated
    script), `launcher`, and every key (ids become paths and wildcards). Loader arguments such as
    a separator may hold one."""
    problems = []
    reach = {"launch": config.get("launch", {}), "launcher": config.get("launcher", "")}
    for where, value in _walk(reach, ""):
        if isinstance(value, str) and _CONTROL.search(value):
            problems.append(
                f"{where}: {value!r} holds a control character (newline, tab, ...); not allowed in a "
                f"value that reaches a job script"
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
    Python while it loads the file, and removes the marker before aftbench sees the config: a
    config file is trusted like code. `aftbench validate` refuses such files (it reads them as plain
    YAML), and the workflow re-reads its config files to refuse them too (after the fact)."""
    if config.get(YTE_MARKER):
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
            methods = config.get("methods", {})
            if not any(methods.get(m, {}).get("kind") == "train" for m in b.get("methods", [])):
                continue  # probes only: no batches
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


def yte_config_files(paths) -> list[str]:
    """The config files (as given to Snakemake) marked `__use_yte__: true`, each as a problem."""
    import yaml

    problems = []
    for path in paths:
        try:
            text = Path(path).read_text()
            # Only a file that names the marker can set it: skip parsing the rest (every DAG build reads them)
            data = yaml.safe_load(text) if YTE_MARKER in text else None
        except (OSError, yaml.YAMLError):
            continue  # Snakemake itself reports an unreadable config file
        if isinstance(data, dict) and data.get(YTE_MARKER):
            problems.append(
                f"{path}: __use_yte__: true makes Snakemake run the file's embedded Python while it "
                f"loads it (that already happened); aftbench does not accept YTE configs: write the config "
                f"out as plain YAML"
            )
    return problems
