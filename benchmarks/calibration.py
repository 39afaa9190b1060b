"""Calibration of the claims' verdicts (aftbench.report.claims): how often a sweep with no effect
gets any decisive verdict (the family-wise error rate, target ≤ 5%), and how often a true effect
is found (power), on simulated sweeps shaped exactly like configured ones.

A simulated sweep has the runs `expand_sweep` plans for a named sweep (its datasets, students,
methods, teacher sets, controls, noise nulls, probes and seeds; one selected run per (dataset,
student, method, teacher set, seed)), with test accuracies

    acc = base + seed effect (shared by every arm of that seed) + run noise + teacher-set effect
          [+ the true effect]

- the seed effect is what the arms of one seed share (STL's seed-s run is every cell's baseline);
- the teacher-set effect (transfer methods only) is a random draw per (dataset, teacher set),
  unrelated to the set's probe accuracy (drawn uniformly), so claim 2's true slope is 0; a union
  is as good as its best member; centred over the dataset's pre-trained sets (unions included)
  so that, under the null, no method beats STL on a dataset's cells on average; a control (noise
  null, random twin, appended noise) is as good as the real set the claims compare it with.
- Noise scales (points): measured (NOISE below; `--noise-from runs.csv` re-measures seed and run
  noise on another sweep), `--teacher-set-sd` raises the teacher-set effect for a stress test.

Under the null every effect is 0. Under the alternative AFT gains `--effect` points on every
pre-trained teacher set, over every other arm (baselines, its null, its twin), with 5 seeds.

    python benchmarks/calibration.py --sweeps offline offline_pretrained paper --sims 500
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from aftbench.config.check import validate_config
from aftbench.config.load import load_config
from aftbench.core.layout import NO_TEACHERS, PROBE_STUDENT, real_set_of
from aftbench.report.claims import ABSENT, CONTRADICTED, SUPPORTED, claims_table
from aftbench.sweep.shape import kept_runs, planned_runs

# Noise scales in accuracy points (module doc), measured: seed and run from the default sweep's
# runs (noise_from on results/reports/offline/runs.csv, 2026-12-06: 0.27 and 0.34); the teacher-set
# effect from docs/claims/offline_pretrained_main.md, the SD of a (dataset, student)'s cell means
# over its pre-trained sets (KD 0.05-0.12, AFT 0.12-0.41 points, seed noise included): 0.3.
NOISE = {"seed": 0.27, "run": 0.34, "teacher_set": 0.3}
DECISIVE = (SUPPORTED, CONTRADICTED)


# Each claim's alternative (module doc): which AFT runs gain `effect` points, and the claims whose
# power it measures.
SCENARIOS = {
    "aft": ("AFT gains the effect on every pre-trained teacher set", ("1.", "4.")),
    "ladder": (
        "AFT gains 0 on a dataset's weakest pre-trained set rising to the effect on its strongest (by probe)",
        ("2.",),
    ),
    "union": ("AFT gains the effect on every union of pre-trained sets", ("3.",)),
}


def simulate(
    shape: pd.DataFrame, rng: np.random.Generator, effect: float = 0.0, noise: dict = NOISE, scenario: str = "aft"
) -> pd.DataFrame:
    """A runs table (accuracies as fractions) for `shape` (module doc); AFT gains `effect` points
    as `scenario` (SCENARIOS) says."""
    runs = shape.copy()
    members = {ts: set(t.split("+")) for ts, t in zip(runs.teacher_set, runs.teachers, strict=True)}
    real = runs[(runs.teacher_set != NO_TEACHERS) & ~runs.control_teacher.astype(bool)]
    tau = {}
    for ds, grp in real.groupby("dataset"):
        sets = sorted(set(grp.teacher_set))
        singles = [s for s in sets if not any(members[o] < members[s] for o in sets)]
        draw = dict(zip(singles, rng.normal(0, noise["teacher_set"], len(singles)), strict=True))
        # a union: as good as its best member; centred over every pre-trained set of the dataset,
        # so that under the null no transfer method beats STL on a dataset's cells on average
        raw = {s: max([draw[p] for p in singles if members[p] <= members[s]] or [0.0]) for s in sets}
        centre = float(np.mean(list(raw.values())))
        tau.update({(ds, s): v - centre for s, v in raw.items()})
    probes = runs[runs.student == PROBE_STUDENT]
    probe = {k: rng.uniform(50, 90) for k in zip(probes.dataset, probes.teacher_set, strict=True)}  # unrelated to tau
    span = {}
    for (ds, ts), p in probe.items():
        if (ds, ts) in tau:  # pre-trained sets only
            lo, hi = span.get(ds, (p, p))
            span[ds] = (min(lo, p), max(hi, p))
    for ds, grp in runs[runs.control_teacher.astype(bool)].groupby("dataset"):
        real_sets = [s for (d, s) in tau if d == ds]
        for c in set(grp.teacher_set):  # a control: as good as the real set the claims compare it with
            appended = [s for s in real_sets if members[s] < members[c]]
            partner = (
                real_set_of(c)  # a noise null: its own set
                or (max(appended, key=lambda s: (len(members[s]), s)) if appended else None)  # noise appended
                or max(real_sets, key=lambda s: probe.get((ds, s), -1.0), default=None)  # a twin: the best probe
            )
            tau[(ds, c)] = tau.get((ds, partner), 0.0)
    seed_effect = {
        k: rng.normal(0, noise["seed"]) for k in set(zip(runs.dataset, runs.student, runs.seed, strict=True))
    }

    def gain(r) -> float:
        if r.penalty != "aft" or r.control_teacher or r.teacher_set == NO_TEACHERS:
            return 0.0
        if scenario == "union":
            return effect if len(members[r.teacher_set]) > 1 else 0.0
        if scenario == "ladder":
            lo, hi = span.get(r.dataset, (0.0, 0.0))
            p = probe.get((r.dataset, r.teacher_set))
            return 0.0 if p is None or hi <= lo else effect * (p - lo) / (hi - lo)
        return effect

    acc = []
    for r in runs.itertuples():
        if r.student == PROBE_STUDENT:
            acc.append(probe[(r.dataset, r.teacher_set)])
            continue
        a = 70.0 + seed_effect[(r.dataset, r.student, r.seed)] + rng.normal(0, noise["run"])
        if r.teacher_set != NO_TEACHERS:
            a += tau.get((r.dataset, r.teacher_set), 0.0) + gain(r)
        acc.append(a)
    runs["test_acc"] = np.array(acc) / 100
    runs["val_acc"] = runs.test_acc + rng.normal(0, noise["run"] / 100, len(runs))
    return runs.assign(selected=True, diverged=False, rho_by_teacher=None, beta=1.0)


def _one(args) -> pd.DataFrame:
    shape, seed, effect, noise, scenario = args
    table = claims_table(simulate(shape, np.random.default_rng(seed), effect, noise, scenario))
    return table[["claim", "scope", "statistic", "verdict", "estimate"]].assign(sim=seed)


def calibrate(
    shape: pd.DataFrame,
    sims: int,
    effect: float = 0.0,
    noise: dict = NOISE,
    workers: int = 1,
    scenario: str = "aft",
    first: int = 0,
) -> pd.DataFrame:
    """Every simulated sweep's claims table, stacked (column `sim`: its seed, from `first`)."""
    jobs = [(shape, s, effect, noise, scenario) for s in range(first, first + sims)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return pd.concat(pool.map(_one, jobs, chunksize=8), ignore_index=True)
    return pd.concat(map(_one, jobs), ignore_index=True)


def family_error(tables: pd.DataFrame) -> tuple[float, float, int]:
    """Share of sweeps with any decisive verdict (summaries excluded: they restate rows), and its
    binomial standard error."""
    rows = tables[~tables.statistic.str.contains("summary")]
    any_decisive = rows.groupby("sim").verdict.apply(lambda v: v.isin(DECISIVE).any())
    p = float(any_decisive.mean())
    return p, float(np.sqrt(p * (1 - p) / len(any_decisive))), len(any_decisive)


def power(tables: pd.DataFrame) -> pd.DataFrame:
    """Per tested row: the share of sweeps where it is supported."""
    rows = tables[~tables.statistic.str.contains("summary")]
    rows = rows[rows.groupby(["claim", "scope", "statistic"]).verdict.transform(lambda v: (v != ABSENT).any())]
    return (
        rows.groupby(["claim", "scope", "statistic"], sort=False)
        .verdict.apply(lambda v: float((v == SUPPORTED).mean()))
        .rename("supported")
        .reset_index()
    )


def noise_from(runs_csv: str) -> dict:
    """Noise scales (points) from a finished sweep's runs.csv: run noise from the spread of a
    cell's seeds net of what the seed shares with STL, the shared part from the covariance of STL
    and transfer runs of the same seed, the teacher-set effect from the spread of cell means."""
    runs = pd.read_csv(runs_csv)
    runs = runs[runs.selected & ~runs.diverged & (runs.role != "probe")]
    runs = runs[~runs.control_teacher.astype(bool)]
    acc = 100 * runs.test_acc
    dev = acc - acc.groupby([runs.dataset, runs.student, runs.method, runs.teacher_set]).transform("mean")
    stl = runs.teacher_set == NO_TEACHERS
    key = ["dataset", "student", "seed"]
    base = runs[stl].assign(d=dev[stl]).set_index(key).d
    other = runs[~stl].assign(d=dev[~stl]).join(base.rename("b"), on=key).dropna(subset=["b"])
    shared = max(float(np.mean(other.d * other.b)), 0.0)
    total = float(np.mean(dev[~stl] ** 2) * 1.5)  # × n/(n−1) for 3 seeds
    cells = runs[~stl].groupby(["dataset", "student", "method", "teacher_set"]).test_acc.mean() * 100
    between = cells.groupby(level=["dataset", "student", "method"]).std().dropna()
    return {
        "seed": round(float(np.sqrt(shared)), 2),
        "run": round(float(np.sqrt(max(total - shared, 0.0))), 2),
        "teacher_set": round(float(np.sqrt(np.mean(between**2))), 2) if len(between) else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweeps", nargs="+", default=["offline", "offline_pretrained", "paper"])
    ap.add_argument("--sims", type=int, default=500, help="null sweeps per shape (0: power only)")
    ap.add_argument("--power-sims", type=int, default=200, help="sweeps per claim's alternative")
    ap.add_argument("--effect", type=float, default=1.0, help="AFT's true gain (points) for the power table")
    ap.add_argument("--power-seeds", type=int, default=5)
    ap.add_argument("--noise-from", help="a finished sweep's runs.csv to take the noise scales from")
    ap.add_argument("--teacher-set-sd", type=float, help="the teacher-set effect's SD, points (stress test)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--out", default="results/benchmarks/calibration.json")
    a = ap.parse_args()
    cfg = validate_config(load_config([a.configfile], []))
    noise = {**NOISE, **({k: v for k, v in noise_from(a.noise_from).items() if v == v} if a.noise_from else {})}
    if a.teacher_set_sd is not None:
        noise["teacher_set"] = a.teacher_set_sd
    print(f"noise scales (points): {noise}", flush=True)
    out = {"noise": noise, "sims": a.sims, "power_sims": a.power_sims, "effect": a.effect, "sweeps": {}}
    for sweep in a.sweeps:
        t0 = time.time()
        shape = kept_runs(planned_runs(cfg, sweep))
        res = {"runs": len(shape), "seeds": int(shape.seed.nunique())}
        if a.sims:
            fwer, se, n = family_error(calibrate(shape, a.sims, 0.0, noise, a.workers))
            res.update(family_error=fwer, family_error_se=se, family_error_sims=n)
            print(
                f"\n## {sweep}: {len(shape)} runs; null: any decisive verdict in {fwer:.3f} ± {se:.3f} of {n}",
                flush=True,
            )
        five = kept_runs(planned_runs(cfg, sweep, a.power_seeds))
        rows = []
        for scenario, (_, claims) in SCENARIOS.items():
            if a.power_sims:
                pw = power(calibrate(five, a.power_sims, a.effect, noise, a.workers, scenario))
                rows.append(pw[pw.claim.str.startswith(claims)].assign(scenario=scenario))
        if rows:
            table = pd.concat(rows, ignore_index=True)
            res["power"] = table.to_dict("records")
            print(table.to_markdown(index=False, floatfmt=".2f"), flush=True)
        res["seconds"] = round(time.time() - t0, 1)
        out["sweeps"][sweep] = res
    from pathlib import Path

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
