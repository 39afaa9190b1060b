"""Config: JSON-schema validation, cross-reference checks, defaults, and sweep expansion.

The schema (config.schema.yaml, shipped inside the package; workflow/schemas/ links to it) checks
shapes and types and holds every default (aftbench.schema.defaults); `check_config` checks
what a schema cannot: every id a sweep or teacher set names exists, every backend/arch/penalty
is registered, modalities fit. Errors name the offending key. `expand_sweep` turns the named
sweep into one record per run; the Snakefile turns records into target paths.
"""

from __future__ import annotations

import copy
import itertools
import json

from .adaptive import adaptive_bound, block_teacher_sets, is_adaptive, select_request, selected_sets
from .input_checks import batch_sizes, control_characters, embedded_code, non_finite_numbers
from .layout import NO_TEACHERS, PROBE_STUDENT, run_id
from .provenance import stale_splits
from .results import BASELINE, method_role
from .schema import defaults, schema
from .sweep_runs import Run, run_train_overrides


class ConfigError(ValueError):
    """A config that cannot run; `problems` lists every problem found, each naming its key path."""

    def __init__(self, problems: list[str] | str, header: str = "config is not valid"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = self.problems[0] if len(self.problems) == 1 else f"{header}: {len(self.problems)} problems"
        super().__init__(
            text if len(self.problems) == 1 else text + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


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
        if fitting:
            return "; ".join(dict.fromkeys(_schema_message(e) for e in min(fitting, key=len)))
        return _schema_message(jsonschema.exceptions.best_match(err.context))
    where = ".".join(map(str, err.absolute_path)) or "<top level>"
    return f"{where}: {err.message}"


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
        raise ConfigError(problems, header="config does not match the schema (aftbench/config.schema.yaml)")


def validate_config(config: dict) -> dict:
    """The schema, then the cross-references and backend arguments, every problem at once; returns
    the config resolved for the workflow (one-line teacher specs expanded to {backend, args}).
    `config` itself is left as it was. Defaults are not filled in here: each job overlays the
    schema's defaults on what the user set (`defaults`), so a rule's params hold only the user's
    settings and a finished run stays valid when a default is added."""
    shape_problems = schema_problems(config)
    problems = list(shape_problems)
    if isinstance(config, dict):
        problems = embedded_code(config) + problems + non_finite_numbers(config) + control_characters(config)
    resolved = None
    if not shape_problems:  # the cross-checks read the shapes the schema guarantees
        try:
            resolved = check_config(config)
        except ConfigError as err:
            problems += err.problems
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), header="config is not valid")
    return resolved


def _merge(base: dict, update: dict) -> dict:
    """Snakemake's merge of config files and --config values: mappings merge key by key."""
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(configfiles: list[str], overrides: list[str]) -> dict:
    """The config Snakemake would see for `--configfile F... --config K=V...`: the files merged in
    order, then each K=V (V read as YAML, as Snakemake does). Raises ConfigError naming the culprit."""
    import yaml

    cfg: dict = {}
    for path in configfiles:
        try:
            text = open(path).read()
        except OSError as err:
            raise ConfigError(
                f"{path}: cannot read it ({err.strerror}); run from the project folder or pass --configfile FILE"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]} ...)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
        cfg = _merge(cfg, data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"--config {item!r}: expected KEY=VALUE, as Snakemake takes it (a config file goes "
                f"with --configfile FILE)"
            )
        cfg = _merge(cfg, {key: yaml.safe_load(value) if value else value})
    return cfg


def expand_teacher_specs(config: dict) -> dict:
    """Turn one-line teacher entries (`timm:...`, `open_clip:...`, `hf:...`) into {backend, args}
    mappings, in place, so everything downstream sees one form. Errors name the entry."""
    from .teacher_specs import parse_spec

    problems = []
    for tid, entry in config["teachers"].items():
        try:
            config["teachers"][tid] = parse_spec(entry)
        except ValueError as err:
            problems.append(f"teachers.{tid}: {err}")
    if problems:
        raise ConfigError(problems)
    return config


def check_config(config: dict) -> dict:
    """Cross-reference and backend-argument checks; raises ConfigError listing every problem,
    each naming its key path. Returns a copy with one-line teacher specs expanded; `config`
    itself is not changed."""
    from .backend_args import check_args, missing_packages, missing_paths, produced_modality
    from .registry_summary import describe

    config = copy.deepcopy(config)

    reg = describe()  # the registries' names, arguments and modalities, without importing torch
    LOADERS, BACKENDS, ARCHS, PENALTIES = reg["loaders"], reg["backends"], reg["archs"], reg["penalties"]
    problems: list[str] = []

    def known(key: str, value: str, registry) -> bool:
        if value not in registry:
            problems.append(f"{key}: unknown {value!r}; known: {sorted(registry)}")
            return False
        return True

    def entry_args(where: str, summary: dict, args: dict, spec_line: str | None = None) -> None:
        found = check_args(summary, args, where)
        found = found or missing_packages(summary, args, where)  # a bad value names no real package
        problems.extend(f"{p} (one-line spec {spec_line!r})" if spec_line else p for p in found)

    for did, d in config["datasets"].items():
        if known(f"datasets.{did}.loader", d["loader"], LOADERS):
            summary, args = LOADERS[d["loader"]], d.get("args", {})
            entry_args(f"datasets.{did}", summary, args)
            produced = produced_modality(summary, args)
            if produced is None and summary.get("produces") is not None:
                problems.append(
                    f"datasets.{did}.args: loader {d['loader']!r} gets no data columns; set "
                    f"{' and/or '.join(summary['produces'].values())}"
                )
            elif produced is not None and produced != d["modality"]:
                problems.append(
                    f"datasets.{did}.modality: declared {d['modality']!r}, but loader {d['loader']!r} "
                    f"produces {produced!r} with these args"
                )
    spec_lines = {tid: t for tid, t in config["teachers"].items() if isinstance(t, str)}
    try:
        expand_teacher_specs(config)
    except ConfigError as err:
        problems.extend(err.problems)
    for tid, t in config["teachers"].items():
        if isinstance(t, dict) and known(f"teachers.{tid}.backend", t["backend"], BACKENDS):
            entry_args(f"teachers.{tid}", BACKENDS[t["backend"]]["args"], t.get("args", {}), spec_lines.get(tid))
    for sid, s in config["students"].items():
        if known(f"students.{sid}.arch", s["arch"], ARCHS):
            entry_args(f"students.{sid}", ARCHS[s["arch"]]["args"], s.get("args", {}))
    for mid, m in config["methods"].items():
        if m["kind"] == "train" and known(f"methods.{mid}.penalty", m.get("penalty", "none"), PENALTIES):
            probe = distilled_probe(m)
            if probe is not None and config["methods"].get(probe, {}).get("kind") != "probe":
                problems.append(f"methods.{mid}.args.probe: {probe!r} is not a method of kind probe")
    for ts, members in config["teacher_sets"].items():
        if ts == NO_TEACHERS:
            problems.append(f"teacher_sets.{ts}: the id {NO_TEACHERS!r} is reserved for runs without teachers")
        for t in members:
            if t not in config["teachers"]:
                problems.append(f"teacher_sets.{ts}: unknown teacher {t!r}; known: {sorted(config['teachers'])}")
    sweep = config["sweep"]
    if sweep not in config["sweeps"]:
        problems.append(f"sweep: unknown sweep {sweep!r}; known: {sorted(config['sweeps'])}")
    for name, blocks in config["sweeps"].items():
        for i, b in enumerate(blocks):
            problems.extend(_block_problems(config, f"sweeps.{name}[{i}]", b, reg))
    problems.extend(batch_sizes(config, defaults("train")))
    used = {d for b in config["sweeps"].get(sweep, []) for d in b.get("datasets", [])}
    for did in sorted(used & set(config["datasets"])):  # data of the sweep that runs must be on disk
        d = config["datasets"][did]
        if d["loader"] in LOADERS:
            problems.extend(missing_paths(LOADERS[d["loader"]], d.get("args", {}), f"datasets.{did}"))
    problems.extend(stale_splits(config, LOADERS, used & set(config["datasets"])))
    if not problems and sweep in config["sweeps"]:
        problems.extend(adaptive_conflicts(config))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return config


def _block_problems(config: dict, where: str, b: dict, reg: dict) -> list[str]:
    """What is wrong with one sweep block (ids it names, modalities, β grids, probes); `reg` is
    the registry summary. Entries with problems of their own are reported there, not here."""
    from .registry_summary import teacher_modality

    problems = []
    tsets = block_teacher_sets(b)
    for key in ("datasets", "students", "methods", "teacher_sets"):
        for v in tsets if key == "teacher_sets" else b.get(key, []):
            if v not in config[key]:
                tkey = f"{key}.select.candidates" if key == "teacher_sets" and is_adaptive(b) else key
                problems.append(f"{where}.{tkey}: unknown id {v!r}; known: {sorted(config[key])}")
    if is_adaptive(b):
        sel = b["teacher_sets"]["select"]
        if sel["top_k"] >= len(sel["candidates"]):
            problems.append(
                f"{where}.teacher_sets.select: top_k {sel['top_k']} selects every one of the "
                f"{len(sel['candidates'])} candidates; list them as teacher_sets, or lower top_k"
            )
        if sel.get("union") and sel["top_k"] < 2:
            problems.append(
                f"{where}.teacher_sets.select: the union of one set is that set; set top_k ≥ 2 or drop union"
            )
    if problems:  # the checks below need every id to exist
        return problems
    for did in b["datasets"]:
        modality = config["datasets"][did]["modality"]
        for ts in tsets:
            for t in config["teacher_sets"][ts]:
                spec = config["teachers"].get(t)
                if not isinstance(spec, dict) or spec.get("backend") not in reg["backends"]:
                    continue  # reported with the teacher
                tm = teacher_modality(spec)
                if tm not in modality.split("+"):
                    problems.append(
                        f"{where}: teacher {t!r} (in set {ts!r}) reads {tm} but dataset {did!r} is {modality}"
                    )
        for sid in b["students"]:
            arch = reg["archs"].get(config["students"][sid]["arch"])
            if arch is not None and not set(arch["modality"].split("+")) <= set(modality.split("+")):
                problems.append(
                    f"{where}: student {sid!r} needs {arch['modality']} inputs but dataset {did!r} is {modality}"
                )
    for m in b.get("beta", {}):  # a grid for a method the block does not run is unused (grids are shared by anchors)
        if m not in config["methods"]:
            problems.append(f"{where}.beta: unknown method {m!r}; known: {sorted(config['methods'])}")
    for m in b["methods"]:  # a tensor-product target needs a factor per teacher: two or more teachers
        if config["methods"][m].get("args", {}).get("tensor_product"):
            for ts in tsets:
                if len(config["teacher_sets"][ts]) < 2:
                    problems.append(
                        f"{where}: method {m!r} (tensor_product) needs teacher sets of two or more teachers "
                        f"(image ⊗ text); {ts!r} has {len(config['teacher_sets'][ts])}"
                    )
    train = {**config.get("train", {}), **b.get("train", {})}
    for did in train.get("step_multiplier", {}):
        if did not in config["datasets"]:
            problems.append(f"{where}: train.step_multiplier names unknown dataset {did!r}")
    if train.get("fit_on") == "train+val":  # no validation accuracy: nothing to choose β with
        for m in b["methods"]:
            mspec = block_method(config, b, m)
            grid = mspec.get("beta")
            if mspec["kind"] == "train" and isinstance(grid, list) and len(grid) > 1:
                problems.append(
                    f"{where}: fit_on train+val leaves no validation split to choose {m!r}'s β from {grid}; "
                    f"give it one β (beta: {{{m}: [{grid[0]}]}}) or fit on train"
                )
    for m in b["methods"]:
        mspec = config["methods"][m]
        if mspec["kind"] == "train" and mspec.get("penalty", "none") not in reg["penalties"]:
            continue  # reported with the method
        probe = distilled_probe(mspec)
        if probe is not None and probe not in b["methods"]:
            problems.append(f"{where}: method {m!r} distils the {probe!r} probe; add {probe!r} to methods")
    needs_teacher = [m for m in b["methods"] if method_role(config["methods"][m]) != BASELINE]
    if needs_teacher and not tsets:
        problems.append(f"{where}: methods {needs_teacher} need teacher_sets")
    return problems


def distilled_probe(method: dict) -> str | None:
    """The probe-kind method whose logits a logit-distillation method learns from, else None."""
    from .registry_summary import target_source

    if method["kind"] != "train" or target_source(method["penalty"]) != "probe_logits":
        return None
    return method.get("args", {}).get("probe", "probe")


def beta_grid(method: dict) -> list[float]:
    """A method's β values: `beta` may be one number or a grid (selected on validation)."""
    if method_role(method) == BASELINE:
        return [0.0]
    b = method.get("beta", 1.0)
    return [float(x) for x in (b if isinstance(b, list) else [b])]


def block_method(config: dict, block: dict, method: str) -> dict:
    """A method's entry as a block runs it: with the block's own β grid for it, if it has one."""
    mspec = config["methods"][method]
    return {**mspec, "beta": block["beta"][method]} if method in block.get("beta", {}) else mspec


def expand_sweep(config: dict, sweep: str | None = None, selections: dict[str, list[str]] | None = None) -> list[Run]:
    """One Run per (dataset, student, method, teacher set, β, seed) of the named sweep,
    deduplicated. STL runs have no teacher set and β = 0; probes have no student, β = 0 and one
    seed (they are deterministic). An adaptive block trains on the sets its selection chose
    (`selections`: request digest -> the selected set ids, as written by the selection step);
    before its selection is made it contributes only its runs without teachers."""
    runs: dict[str, Run] = {}
    cells: dict[str, str] = {}  # run id without the train digest -> the block settings it was given
    for b in config["sweeps"][sweep or config["sweep"]]:
        for d in b["datasets"]:
            if is_adaptive(b):
                request = select_request(b, d)
                chosen = (selections or {}).get(request.digest)
                block_sets = [] if chosen is None else selected_sets(config, request, chosen)
            else:
                block_sets = b.get("teacher_sets", [])
            train = json.dumps(run_train_overrides(config, b.get("train", {}), d), sort_keys=True)
            for m in b["methods"]:
                mspec = config["methods"][m]
                if mspec["kind"] == "probe":
                    for ts in block_sets:
                        r = Run("probe", d, PROBE_STUDENT, m, ts, 0, "{}")
                        runs.setdefault(r.run_id, r)
                    continue
                tsets = [NO_TEACHERS] if method_role(mspec) == BASELINE else block_sets
                mspec = block_method(config, b, m)
                for s, ts, beta, seed in itertools.product(b["students"], tsets, beta_grid(mspec), b["seeds"]):
                    r = Run("train", d, s, m, ts, int(seed), train, beta)
                    cell = run_id(d, s, m, ts, beta, int(seed))
                    if cells.setdefault(cell, train) != train:  # one sweep, one table cell: one setting
                        raise ConfigError(
                            f"sweep {sweep or config['sweep']!r}: run {cell} appears in two blocks with different "
                            f"train settings ({cells[cell]} and {train}); its table cell would mix them. Put them in "
                            f"two sweeps"
                        )
                    runs.setdefault(r.run_id, r)
    return list(runs.values())


def setting(config: dict, section: str, key: str | None = None):
    """One setting as a job sees it: the user's value, else the schema's default
    (`setting(c, "train", "threads")`; a top-level key: `setting(c, "launcher")`)."""
    if key is None:
        return config.get(section, schema()["properties"][section].get("default"))
    return config.get(section, {}).get(key, defaults(section)[key])


def planned_bound(config: dict, sweep: str | None = None) -> int:
    """The most runs the sweep can have once every selection is made: its runs before any, plus
    each adaptive block's runs on top_k sets (and a union) per dataset, as if none were shared."""
    total = len(expand_sweep(config, sweep, {}))
    for b in config["sweeps"][sweep or config["sweep"]]:
        if not is_adaptive(b):
            continue
        per_set = 0
        for m in b["methods"]:
            mspec = block_method(config, b, m)
            if mspec["kind"] == "probe":
                per_set += 1
            elif method_role(mspec) != BASELINE:
                per_set += len(b["students"]) * len(beta_grid(mspec)) * len(b["seeds"])
        for d in b["datasets"]:
            r = select_request(b, d)
            total += per_set * (r.top_k + int(r.union))
    return total


def adaptive_conflicts(config: dict) -> list[str]:
    """Runs an adaptive block of the configured sweep could share with another block under other
    train settings, whatever it selects (checked before any job: expand_sweep would find them only
    after the selection)."""
    if not any(is_adaptive(b) for b in config["sweeps"][config["sweep"]]):
        return []
    widened = copy.deepcopy(config)
    for b in widened["sweeps"][config["sweep"]]:
        if is_adaptive(b):
            b["teacher_sets"] = list(dict.fromkeys(ts for _, ts in adaptive_bound(config, b)))
    try:
        expand_sweep(widened)
    except ConfigError as err:
        return [f"{p} (an adaptive block could select it)" for p in err.problems]
    return []
