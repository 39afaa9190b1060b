"""Config checks before any job: the schema (shapes, types), then what a schema cannot
express: every id a sweep or teacher set names exists, every backend/arch/penalty is registered
with arguments it accepts, modalities fit, data are on disk and splits not stale, and no run is
planned twice under different settings. Every problem at once, each naming its key path
(aftbench.core.schema.ConfigError)."""

from __future__ import annotations

import copy

from aftbench.config.input_checks import batch_sizes, control_characters, embedded_code, non_finite_numbers
from aftbench.core import plugins
from aftbench.core.layout import NO_TEACHERS, NOISE_NULL_PREFIX, real_set_of
from aftbench.core.roles import BASELINE, NO_PENALTY, method_role, penalty_of
from aftbench.core.schema import ConfigError, defaults, schema_problems, yaml12_numbers
from aftbench.data.provenance import stale_splits
from aftbench.report.track import missing_tracker
from aftbench.selection.adaptive import block_teacher_sets, is_adaptive
from aftbench.sweep.expand import adaptive_conflicts, distilled_probe


def validate_config(config: dict) -> dict:
    """The schema, then the cross-references and backend arguments, every problem at once; returns
    the config resolved for the workflow (one-line teacher specs expanded to {backend, args}).
    `config` itself is left as it was. Defaults are not filled in here: each job overlays the
    schema's defaults on what the user set (`defaults`), so a rule's params hold only the user's
    settings and a finished run stays valid when a default is added."""
    config = yaml12_numbers(config)  # `lr: 1e-3` is a number, as a person reads it (PyYAML: text)
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


def expand_teacher_specs(config: dict) -> dict:
    """Turn one-line teacher entries (`timm:...`, `open_clip:...`, `hf:...`) into {backend, args}
    mappings, in place, so everything downstream sees one form. Errors name the entry."""
    from aftbench.teachers.specs import parse_spec

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
    from aftbench.core.declare import check_args, missing_packages, missing_paths, produced_modality
    from aftbench.sweep.summary import describe

    config = copy.deepcopy(config)

    try:  # the plugins' entries join the registries' (aftbench.core.plugins)
        plugins.activate(config.get("plugins", []))
        reg = describe()  # the registries' names, arguments and modalities, without importing torch
    except plugins.PluginError as err:
        raise ConfigError(str(err)) from None
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

    if config.get("track", "none") != "none" and (fix := missing_tracker(config["track"])):
        problems.append(f"track: {config['track']!r} is not installed here; {fix}, or set track: none")
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
    for modality, sets in config.get("headline_sets", {}).items():
        for ts in sets:
            if ts not in config["teacher_sets"]:
                problems.append(f"headline_sets.{modality}: unknown teacher set {ts!r}")
    for tsid in config["teacher_sets"]:
        if real_set_of(tsid) is not None:
            problems.append(
                f"teacher_sets.{tsid}: ids starting {NOISE_NULL_PREFIX!r} name a block's matched noise null "
                f"(noise_null: true); rename this set"
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
        if m["kind"] == "train" and known(f"methods.{mid}.penalty", penalty_of(m), PENALTIES):
            if penalty_of(m) != NO_PENALTY:
                entry_args(f"methods.{mid}", reg["penalty_args"][penalty_of(m)], m.get("args", {}))
            if m.get("union_norm", "none") != "none" and (PENALTIES[penalty_of(m)] or penalty_of(m) == NO_PENALTY):
                problems.append(
                    f"methods.{mid}.union_norm: penalty {penalty_of(m)!r} does not read the cached teacher features "
                    f"(its target is {PENALTIES[penalty_of(m)] or 'none'}); remove union_norm"
                )
            probe = distilled_probe(m)
            if probe is not None and config["methods"].get(probe, {}).get("kind") != "probe":
                problems.append(f"methods.{mid}.args.probe: {probe!r} is not a method of kind probe")
            if "label_smoothing" in m and penalty_of(m) != NO_PENALTY:
                problems.append(
                    f"methods.{mid}.label_smoothing: only a baseline (penalty none) tunes label smoothing; "
                    f"a transfer method's tuned knob is its beta grid"
                )
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
    from aftbench.sweep.summary import teacher_modality

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
    for key in ("step_multiplier", "fit_on_by_dataset"):
        for did in train.get(key, {}):
            if did not in config["datasets"]:
                problems.append(f"{where}: train.{key} names unknown dataset {did!r}")
    for m, grid in b.get("beta", {}).items():
        if m in config["methods"] and method_role(config["methods"][m]) == BASELINE:
            if any(v >= 1 for v in (grid if isinstance(grid, list) else [grid])):
                problems.append(f"{where}.beta.{m}: a baseline's grid is its label smoothing, each value in [0, 1)")
    for m in b["methods"]:
        mspec = config["methods"][m]
        if mspec["kind"] == "train" and penalty_of(mspec) not in reg["penalties"]:
            continue  # reported with the method
        probe = distilled_probe(mspec)
        if probe is not None and probe not in b["methods"]:
            problems.append(f"{where}: method {m!r} distils the {probe!r} probe; add {probe!r} to methods")
    needs_teacher = [m for m in b["methods"] if method_role(config["methods"][m]) != BASELINE]
    if needs_teacher and not tsets:
        problems.append(f"{where}: methods {needs_teacher} need teacher_sets")
    return problems
