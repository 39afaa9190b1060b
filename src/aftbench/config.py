"""Config: JSON-schema validation, cross-reference checks, and sweep expansion.

The schema (workflow/schemas/config.schema.yaml) checks shapes and types; `check_config` checks
what a schema cannot: every id a sweep or teacher set names exists, every backend/arch/penalty
is registered, modalities fit. Errors name the offending key. `expand_sweep` turns the named
sweep into one record per run; the Snakefile turns records into target paths.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

NO_TEACHERS = "none"
class ConfigError(ValueError):
    pass


def validate_schema(config: dict, schema_path: str | Path = SCHEMA) -> None:
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  at {'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors[:10]]
        raise ConfigError("config.yaml does not match workflow/schemas/config.schema.yaml:\n" + "\n".join(lines))


def expand_teacher_specs(config: dict) -> dict:
    """Turn one-line teacher entries (`timm:...`, `open_clip:...`, `hf:...`) into {backend, args}
    mappings, in place, so everything downstream sees one form. Errors name the entry."""
    from .teacher_specs import parse_spec

    for tid, entry in config["teachers"].items():
        try:
            config["teachers"][tid] = parse_spec(entry)
        except ValueError as err:
            raise ConfigError(f"teachers.{tid}: {err}") from None
    return config


def check_config(config: dict) -> None:
    """Cross-reference checks; raises ConfigError naming the culprit."""
    from .registry import describe, teacher_modality

    reg = describe()  # the registries' names and modalities, without importing torch
    LOADERS, BACKENDS, ARCHS, PENALTIES = reg["loaders"], reg["backends"], reg["archs"], reg["penalties"]

    def known(kind: str, key: str, value: str, registry) -> None:
        if value not in registry:
            raise ConfigError(f"{kind} {key}: unknown {value!r}; known: {sorted(registry)}")

    for did, d in config["datasets"].items():
        known("dataset", f"datasets.{did}.loader", d["loader"], LOADERS)
    expand_teacher_specs(config)
    for tid, t in config["teachers"].items():
        known("teacher", f"teachers.{tid}.backend", t["backend"], BACKENDS)
    for sid, s in config["students"].items():
        known("student", f"students.{sid}.arch", s["arch"], ARCHS)
    for mid, m in config["methods"].items():
        if m["kind"] == "train":
            known("method", f"methods.{mid}.penalty", m.get("penalty", "none"), PENALTIES)
            probe = distilled_probe(m)
            if probe is not None:
                if config["methods"].get(probe, {}).get("kind") != "probe":
                    raise ConfigError(f"methods.{mid}.args.probe: {probe!r} is not a method of kind probe")
    for ts, members in config["teacher_sets"].items():
        if ts == NO_TEACHERS:
            raise ConfigError(f"teacher_sets.{ts}: the id {NO_TEACHERS!r} is reserved for runs without teachers")
        for t in members:
            if t not in config["teachers"]:
                raise ConfigError(f"teacher_sets.{ts}: unknown teacher {t!r}; known: {sorted(config['teachers'])}")
    sweep = config["sweep"]
    if sweep not in config["sweeps"]:
        raise ConfigError(f"sweep: unknown sweep {sweep!r}; known: {sorted(config['sweeps'])}")
    for name, blocks in config["sweeps"].items():
        for i, b in enumerate(blocks):
            where = f"sweeps.{name}[{i}]"
            for key, registry in (("datasets", "datasets"), ("students", "students"), ("methods", "methods"),
                                  ("teacher_sets", "teacher_sets")):
                for v in b.get(key, []):
                    if v not in config[registry]:
                        raise ConfigError(f"{where}.{key}: unknown id {v!r}; known: {sorted(config[registry])}")
            for did in b["datasets"]:
                modality = config["datasets"][did]["modality"]
                for ts in b.get("teacher_sets", []):
                    for t in config["teacher_sets"][ts]:
                        tm = teacher_modality(config["teachers"][t])
                        if tm not in modality.split("+"):
                            raise ConfigError(f"{where}: teacher {t!r} (in set {ts!r}) reads {tm} but dataset "
                                              f"{did!r} is {modality}")
                for sid in b["students"]:
                    sm = ARCHS[config["students"][sid]["arch"]]
                    if not set(sm.split("+")) <= set(modality.split("+")):
                        raise ConfigError(f"{where}: student {sid!r} needs {sm} inputs but dataset {did!r} is {modality}")
            for m in b.get("beta", {}):
                if m not in b["methods"]:
                    raise ConfigError(f"{where}.beta: {m!r} is not one of this block's methods {b['methods']}")
            for m in b["methods"]:
                probe = distilled_probe(config["methods"][m])
                if probe is not None:
                    if probe not in b["methods"]:
                        raise ConfigError(f"{where}: method {m!r} distils the {probe!r} probe; add {probe!r} to methods")
            needs_teacher = [m for m in b["methods"] if config["methods"][m]["kind"] == "probe"
                             or config["methods"][m].get("penalty", "none") != "none"]
            if needs_teacher and not b.get("teacher_sets"):
                raise ConfigError(f"{where}: methods {needs_teacher} need teacher_sets")


@dataclass(frozen=True)
class Run:
    kind: str  # "train" | "probe"
    dataset: str
    student: str
    method: str
    teacher_set: str
    seed: int
    train: str  # JSON of the block's train overrides (hashable)
    beta: float = 0.0

    @property
    def run_id(self) -> str:
        return RUN_TEMPLATE.format(dataset=self.dataset, student=self.student, method=self.method,
                                   tset=self.teacher_set, beta=format_beta(self.beta), seed=self.seed)


# The one layout of a run's directory (also the Snakemake wildcard pattern of its outputs).
RUN_TEMPLATE = "dataset~{dataset}/student~{student}/method~{method}/teachers~{tset}/beta~{beta}/seed~{seed}"
# The one layout of a factor-transfer paraphraser's outputs (one per dataset, teacher set, FT method).
FACTORS_TEMPLATE = "dataset~{dataset}/teachers~{tset}/method~{method}"


def distilled_probe(method: dict) -> str | None:
    """The probe-kind method whose logits a logit-distillation method learns from, else None."""
    from .registry import target_source

    if method["kind"] != "train" or target_source(method["penalty"]) != "probe_logits":
        return None
    return method.get("args", {}).get("probe", "probe")


def format_beta(beta: float) -> str:
    """β as it appears in paths: shortest round-trip form (0.1, 1, 10, 1e-05)."""
    return format(float(beta), "g")


def beta_grid(method: dict) -> list[float]:
    """A method's β values: `beta` may be one number or a grid (selected on validation)."""
    if method.get("penalty", "none") == "none":
        return [0.0]
    b = method.get("beta", 1.0)
    return [float(x) for x in (b if isinstance(b, list) else [b])]


PROBE_STUDENT = "probe"


def expand_sweep(config: dict, sweep: str | None = None) -> list[Run]:
    """One Run per (dataset, student, method, teacher set, β, seed) of the named sweep,
    deduplicated. STL runs have no teacher set and β = 0; probes have no student, β = 0 and one
    seed (they are deterministic)."""
    runs: dict[str, Run] = {}
    for b in config["sweeps"][sweep or config["sweep"]]:
        train = json.dumps(b.get("train", {}), sort_keys=True)
        for d in b["datasets"]:
            for m in b["methods"]:
                mspec = config["methods"][m]
                if mspec["kind"] == "probe":
                    for ts in b["teacher_sets"]:
                        r = Run("probe", d, PROBE_STUDENT, m, ts, 0, "{}")
                        runs.setdefault(r.run_id, r)
                    continue
                tsets = [NO_TEACHERS] if mspec.get("penalty", "none") == "none" else b["teacher_sets"]
                if m in b.get("beta", {}):  # the block's own β grid for this method
                    mspec = {**mspec, "beta": b["beta"][m]}
                for s, ts, beta, seed in itertools.product(b["students"], tsets, beta_grid(mspec), b["seeds"]):
                    r = Run("train", d, s, m, ts, int(seed), train, beta)
                    if r.run_id in runs and runs[r.run_id].train != train:
                        raise ConfigError(f"sweep {sweep or config['sweep']!r}: run {r.run_id} appears in two "
                                          f"blocks with different train settings")
                    runs.setdefault(r.run_id, r)
    return list(runs.values())


def train_spec(config: dict, run: Run) -> dict:
    """The fully resolved spec a training job needs (also its Snakemake params: any change to
    what this run depends on, and nothing else, makes Snakemake rerun it)."""
    train = {**config["train"], **json.loads(run.train)}
    return {
        "run_id": run.run_id, "dataset": run.dataset, "student_id": run.student,
        "student": config["students"].get(run.student, {"arch": "linear_probe"}), "method_id": run.method,
        "method": {**config["methods"][run.method], "beta": run.beta},  # this run's one β of the grid
        "teacher_set": run.teacher_set, "teachers": teachers_of(config, run.teacher_set), "seed": run.seed,
        "train": train,
    }


def teachers_of(config: dict, teacher_set: str) -> list[str]:
    return [] if teacher_set == NO_TEACHERS else list(config["teacher_sets"][teacher_set])
