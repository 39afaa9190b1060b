"""Tune-then-refit (issue #27): a block fitted on train + val with a grid fits every value on
train (its tune stage), chooses on validation per seed by the one rule (aftbench.core.tuning),
and refits the choice on train + val; the choice is recorded, the report keeps the refit."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_specs import tiny_spec_dict

from aftbench.config.check import validate_config
from aftbench.core.io import write_json
from aftbench.core.layout import metrics_path
from aftbench.core.records import sign_record
from aftbench.core.tuning import pick_on_val
from aftbench.report.build import run_stages, select_beta
from aftbench.sweep.expand import expand_sweep, planned_bound, refitted_datasets, tuning_budgets
from aftbench.sweep.plan import sweep_jobs
from aftbench.sweep.runs import train_spec
from aftbench.train.loop import RunSpec, train_run
from aftbench.train.refit import TuneStageError, choose_tuned

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def refit_config(cfg, fit_on="train+val", aft=(1, 10), stl=(0.0, 0.1)):
    c = copy.deepcopy(cfg)
    block = c["sweeps"]["offline"][0]
    block.update(train={"fit_on": fit_on}, beta={"aft": list(aft), "kd": list(aft), "stl": list(stl)})
    block["datasets"] = block["datasets"][:1]
    c["sweeps"]["offline"] = [block]
    return c


def test_a_grid_on_train_and_val_is_a_tune_stage_on_train_then_one_refit(cfg):
    c = refit_config(cfg)
    block = c["sweeps"]["offline"][0]
    runs = expand_sweep(c)
    refits = [r for r in runs if r.grid]
    trained = [r for r in runs if r.kind == "train"]
    per_seed = len(block["seeds"]) * len(block["students"])
    sets = len(block["teacher_sets"]) * (2 if block.get("noise_null") else 1)
    # STL: one cell per seed; kd and aft: one per (teacher set or its null, seed); each: 2 tune runs + 1 refit
    assert len(refits) == per_seed * (1 + 2 * sets) and len(trained) == 3 * len(refits)
    for r in refits:
        assert r.beta is None and "beta~tuned_" in r.run_id
        spec = train_spec(c, r)
        assert spec["train"]["fit_on"] == "train+val" and "method" not in spec
        assert [t["run_id"] for t in spec["tune"]] == [t.run_id for t in r.tune_stage]
        for t in r.tune_stage:
            assert t in runs and train_spec(c, t)["train"]["fit_on"] == "train"
    stl = next(r for r in refits if r.method == "stl")
    assert [t["method"].get("label_smoothing", 0.0) for t in train_spec(c, stl)["tune"]] == [0.0, 0.1]
    assert [t["method"]["beta"] for t in train_spec(c, next(r for r in refits if r.method == "aft"))["tune"]] == [1, 10]
    assert refitted_datasets(c) == [block["datasets"]] and tuning_budgets(c)[0]["aft"] == 2
    assert planned_bound(c) == len(runs)


def test_one_value_on_train_and_val_is_fitted_once_and_train_fitted_datasets_select_on_val(cfg):
    c = refit_config(cfg, aft=(10,), stl=(0.0,))
    c["sweeps"]["offline"][0]["beta"]["kd"] = [10]
    assert not any(r.grid for r in expand_sweep(c)) and refitted_datasets(c) == [[]]  # fixed β: an explicit choice
    c = refit_config(cfg)
    c["sweeps"]["offline"][0]["train"]["fit_on_by_dataset"] = {c["sweeps"]["offline"][0]["datasets"][0]: "train"}
    assert not any(r.grid for r in expand_sweep(c))  # fitted on train: β chosen on val, nothing to refit


def test_the_plan_gives_a_refit_its_tune_stage(cfg):
    c = validate_config(refit_config(cfg))
    jobs, _ = sweep_jobs(c)
    refits = [j for j in jobs.values() if j.kind == "refit"]
    assert refits
    for j in refits:
        assert {metrics_path(t.run_id) for t in j.run.tune_stage} <= set(j.needs)
        assert all(jobs[metrics_path(t.run_id)].kind == "train" for t in j.run.tune_stage)


def record(run_id, val_acc, beta=1.0, diverged=False, fit_on="train", **kw):
    return {"run_id": run_id, "val_acc": val_acc, "beta": beta, "diverged": diverged, "fit_on": fit_on, **kw}


def test_the_rule_prefers_val_then_the_smaller_value_and_skips_diverged_runs():
    assert pick_on_val([record("a", 0.5, 1.0), record("b", 0.7, 10.0)]) == 1
    assert pick_on_val([record("a", 0.7, 10.0), record("b", 0.7, 1.0)]) == 1  # tie: the smaller β
    assert pick_on_val([record("a", 0.6, 0, label_smoothing=0.1), record("b", 0.6, 0, label_smoothing=0.0)]) == 1
    assert pick_on_val([record("a", 0.9, 1.0, diverged=True), record("b", 0.2, 10.0)]) == 1
    assert pick_on_val([record("a", 0.9, diverged=True)]) is None


def refit_spec(tmp_path, vals, diverged=(False, False)):
    """A refit run's spec on the tiny digits task (grid β ∈ {0.5, 2}) and its tune stage's records."""
    spec = tiny_spec_dict("aft", "aft", train={"fit_on": "train+val"})
    method = spec.pop("method")
    spec["run_id"] = "tiny/aft/beta~tuned_0.5_2"
    spec["tune"] = [{"run_id": f"tiny/aft/beta~{b:g}", "method": {**method, "beta": b}} for b in (0.5, 2.0)]
    paths = []
    for t, v, d in zip(spec["tune"], vals, diverged, strict=True):
        p = tmp_path / f"{t['method']['beta']:g}.json"
        write_json(str(p), sign_record(record(t["run_id"], v, t["method"]["beta"], d)))
        paths.append(str(p))
    return spec, paths


def test_a_refit_trains_on_train_and_val_with_the_value_its_tune_stage_chose(tmp_path, digits_split, feats):
    spec, paths = refit_spec(tmp_path, [0.40, 0.55])
    chosen = choose_tuned(spec, paths)
    assert chosen["method"]["beta"] == 2.0 and "tune" not in chosen
    m = train_run(RunSpec.from_dict(chosen), digits_split, [feats], str(tmp_path / "m.json"))
    assert m["beta"] == 2.0 and m["fit_on"] == "train+val" and m["val_acc"] is None
    t = m["tuning"]
    assert t["knob"] == "beta" and t["chosen"] == 2.0 and t["chosen_run"] == "tiny/aft/beta~2"
    assert [(c["beta"], c["val_acc"]) for c in t["candidates"]] == [(0.5, 0.40), (2.0, 0.55)]
    # a diverged tune run is never chosen, however high its val accuracy
    spec, paths = refit_spec(tmp_path, [0.40, 0.90], diverged=(False, True))
    assert choose_tuned(spec, paths)["method"]["beta"] == 0.5


@pytest.mark.parametrize(
    "fault, match",
    [
        ("all diverged", "every run of its tune stage diverged"),
        ("stale record", "its tune stage should be the records of"),
        ("missing record", "its tune stage should be the records of"),
        ("fitted on val", "were not fitted on train with a val accuracy"),
        ("edited record", r"tune record .*: edited since its run wrote it.*`rm "),
    ],
)
def test_a_tune_stage_that_cannot_choose_is_refused(tmp_path, fault, match):
    spec, paths = refit_spec(tmp_path, [0.4, 0.5], diverged=(True, True) if fault == "all diverged" else (False, False))
    if fault == "stale record":  # a record of another run where the tune stage's should be
        write_json(paths[1], sign_record(record("tiny/aft/beta~7", 0.5, 7.0)))
    if fault == "missing record":
        paths = paths[:1]
    if fault == "fitted on val":
        write_json(paths[1], sign_record(record(spec["tune"][1]["run_id"], None, 2.0, fit_on="train+val")))
    if fault == "edited record":  # val accuracy raised by hand: it would choose the refit's β
        write_json(paths[1], {**json.loads(Path(paths[1]).read_text()), "val_acc": 0.99})
    with pytest.raises(TuneStageError, match=match):
        choose_tuned(spec, paths)


def test_the_report_keeps_the_refit_and_marks_its_tune_stage():
    keys = {"dataset": "d", "student": "s", "method": "aft", "teacher_set": "t"}
    tuning = json.dumps({"chosen": 10.0})
    runs = pd.DataFrame(
        [
            {**keys, "seed": 0, "beta": 1.0, "val_acc": 0.5, "tuning": None},
            {**keys, "seed": 0, "beta": 10.0, "val_acc": 0.6, "tuning": None},
            {**keys, "seed": 0, "beta": 10.0, "val_acc": None, "tuning": tuning},
            {**keys, "seed": 1, "beta": 1.0, "val_acc": 0.5, "tuning": None},  # a cell fitted on train: chosen on val
            {**keys, "seed": 1, "beta": 10.0, "val_acc": 0.4, "tuning": None},
        ]
    )
    runs["stage"] = run_stages(runs)
    assert runs.stage.tolist() == ["tune", "tune", "refit", "", ""]
    assert select_beta(runs).tolist() == [False, False, True, True, False]


@pytest.mark.slow
def test_the_paper_sweep_is_tune_then_refit_and_paper_fixed_is_the_fixed_beta(cfg):
    """The paper sweep's plan (the DAG `snakemake -n --config sweep=paper` builds: test_cost pins
    the two one to one) has a refit per fit-on-train+val cell, waiting for its tune stage;
    Flowers-102 and DTD (fitted on train) choose on val; `paper_fixed` keeps the reference's β = 10."""
    jobs, _ = sweep_jobs(validate_config({**cfg, "sweep": "paper"}))
    refit = [j for j in jobs.values() if j.kind == "refit"]
    assert refit and {j.dataset for j in refit}.isdisjoint({"flowers102", "dtd"})
    assert {len(j.run.grid) for j in refit} == {3}
    assert all(jobs[metrics_path(t.run_id)].kind == "train" for t in refit[0].run.tune_stage)
    fixed = expand_sweep(validate_config(cfg), "paper_fixed")
    assert not any(r.grid for r in fixed) and {r.beta for r in fixed if r.method == "aft"} == {10.0}


@pytest.mark.slow
def test_a_tune_then_refit_sweep_runs_end_to_end(tmp_path, text_tsv):
    """The DAG on a tiny refitted sweep: the dry run plans the two stages, the refits train on
    train + val with the value their tune stage chose, and the report keeps the refits."""
    from test_pipeline import planned, smk, tiny_config

    cfg = tiny_config(text_tsv)
    block = cfg["sweeps"]["tiny"][0]  # digits: stl, kd, aft (β grid [0.5, 2]), probe; 2 seeds
    block.update(methods=["stl", "aft", "probe"], train={"fit_on": "train+val"}, beta={"stl": [0.0, 0.1]})
    cfg["sweeps"]["tiny"] = [block]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = planned(tmp_path)
    assert plan["train"] == 2 * 2 * 2 and plan["refit"] == 2 * 2  # (stl, aft) × 2 values × 2 seeds; a refit each
    smk(tmp_path)
    runs = pd.read_csv(tmp_path / "results" / "reports" / "tiny" / "runs.csv")
    trained = runs[runs.role != "probe"]
    assert sorted(trained.stage.fillna("").unique()) == ["refit", "tune"]
    final = trained[trained.selected]
    assert (final.stage == "refit").all() and len(final) == 4 and (final.fit_on == "train+val").all()
    for _, r in final.iterrows():
        tuning = json.loads(r.tuning)
        stage = trained[(trained.method == r.method) & (trained.seed == r.seed) & (trained.stage == "tune")]
        best = stage.iloc[pick_on_val(stage.to_dict("records"))]
        assert tuning["chosen_run"] == best.run_id
        knob = r.label_smoothing if r.method == "stl" else r.beta
        assert (0.0 if pd.isna(knob) else knob) == tuning["chosen"]  # plain STL (0) records no label smoothing
    caption = (tmp_path / "results" / "reports" / "tiny" / "tables" / "main.md").read_text()
    assert "Tune-then-refit" in caption and "(equal): STL 2, AFT 2" in caption


def test_the_beta_figure_leaves_out_a_baseline_without_validation_accuracy(tmp_path):
    """A block fitted on train + val whose STL has one value (fitted once, no val accuracy) and
    whose AFT is tune-then-refit: AFT's tune runs have nothing to be compared with on validation,
    so the β figure says so instead of failing the report (it once crashed on a log axis of NaNs)."""
    from fake_runs import runs_frame

    from aftbench.report.figures import accuracy_vs_beta, beta_gains

    records = []
    for seed in range(3):
        records.append(
            dict(method="stl", teacher_set="none", seed=seed, test_acc=0.7, val_acc=None, fit_on="train+val")
        )
        for b in (0.5, 2.0):
            records.append(dict(method="aft", teacher_set="a", seed=seed, beta=b, test_acc=0.7, val_acc=0.6 + b / 100))
        records.append(dict(method="aft", teacher_set="a", seed=seed, beta=2.0, test_acc=0.71, val_acc=None))
    runs = runs_frame(records).assign(control_teacher=False)
    runs["stage"] = ["", "tune", "tune", "refit"] * 3
    assert beta_gains(runs).empty
    accuracy_vs_beta(runs, str(tmp_path / "beta.png"))
    assert (tmp_path / "beta.png").exists()
