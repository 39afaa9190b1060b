"""Equal tuning budgets: STL tunes its own knob (label smoothing) on validation as transfer
methods tune β, `validate` and every main-table caption state each method's number of
validation-selected configurations."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml
from test_pipeline import tiny_config
from tiny_specs import tiny_spec_dict

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError
from aftbench.report.tables import tuning_budget_sentence, tuning_budgets
from aftbench.sweep.expand import expand_sweep
from aftbench.sweep.expand import tuning_budgets as planned_budgets
from aftbench.sweep.runs import train_spec
from aftbench.train.loop import RunSpec, train_run


@pytest.fixture
def smoothed(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["methods"]["stl"]["label_smoothing"] = [0.0, 0.1]
    return cfg


def test_stl_with_a_label_smoothing_grid_gets_one_run_per_value(smoothed, text_tsv):
    cfg = validate_config(smoothed)
    stl = [r for r in expand_sweep(cfg) if r.method == "stl" and r.dataset == "digits"]
    assert sorted((r.beta, r.seed) for r in stl) == [(0.0, 0), (0.0, 1), (0.1, 0), (0.1, 1)]
    spec = train_spec(cfg, next(r for r in stl if r.beta == 0.1))
    assert spec["method"]["label_smoothing"] == 0.1 and spec["method"]["beta"] == 0.0
    assert "beta~0.1" in spec["run_id"]
    plain = validate_config(tiny_config(text_tsv))  # without the grid, STL's spec is as it was
    assert (
        "label_smoothing" not in train_spec(plain, next(r for r in expand_sweep(plain) if r.method == "stl"))["method"]
    )
    assert planned_budgets(cfg)[0] == {"stl": 2, "kd": 1, "aft": 2, "probe": 2}


def test_label_smoothing_is_a_baselines_knob_only(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["methods"]["kd"]["label_smoothing"] = 0.1
    with pytest.raises(ConfigError, match=r"methods.kd.label_smoothing: only a baseline"):
        validate_config(cfg)


def test_label_smoothing_reaches_the_loss(tmp_path, digits_split, feats):
    def run(**method):
        d = tiny_spec_dict("stl", "none")
        d["method"] = {**d["method"], "beta": 0.0, **method}
        return train_run(RunSpec.from_dict(d), digits_split, [], str(tmp_path / f"{len(method)}{method}.json"))

    plain, zero, smooth = run(), run(label_smoothing=0.0), run(label_smoothing=0.2)
    assert zero["test_acc"] == plain["test_acc"] and zero["final_ce"] == plain["final_ce"]  # 0 is plain CE
    assert smooth["label_smoothing"] == 0.2 and smooth["final_ce"] > plain["final_ce"]


def budget_runs(stl_values: int) -> pd.DataFrame:
    rows = [
        dict(
            method="stl", role="baseline", penalty=None, dataset="d", student="s", teacher_set="none", seed=0, beta=0.0
        )
        for _ in range(stl_values)
    ]
    rows += [
        dict(method="aft", role="transfer", penalty="aft", dataset="d", student="s", teacher_set="a", seed=0, beta=b)
        for b in (1.0, 10.0)
    ]
    return pd.DataFrame(rows)


def test_the_caption_states_each_methods_budget():
    assert tuning_budgets(budget_runs(1)) == {"stl": 1, "aft": 2}
    assert "(UNEQUAL: a method with more tries can win by tuning alone): STL 1, AFT 2" in tuning_budget_sentence(
        budget_runs(1)
    )
    assert "(equal): STL 2, AFT 2" in tuning_budget_sentence(budget_runs(2))
    assert "FEWER" not in tuning_budget_sentence(budget_runs(2))


def test_the_caption_names_a_method_with_runs_missing_from_its_grid():
    """A report of finished runs while the sweep runs: one seed of AFT has one β of two."""
    runs = pd.concat([budget_runs(2), budget_runs(2).assign(seed=1)], ignore_index=True).drop(index=[7])
    assert runs.iloc[-1].method == "aft"
    assert "FEWER in some cells (runs missing, or a smaller grid there): AFT in 1 of its 2 (cell, seed)s." in (
        tuning_budget_sentence(runs)
    )


def test_validate_reports_each_blocks_budget(tmp_path, smoothed):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(smoothed))
    p = subprocess.run(
        [sys.executable, "-m", "aftbench", "validate", "--configfile", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no ./config.yaml here to merge the tiny config over
    )
    assert p.returncode == 0, p.stderr
    assert "block 1: configurations chosen on validation per cell (UNEQUAL across training methods): " in p.stdout
    assert "stl 2, kd 1, aft 2, probe 2" in p.stdout


def test_a_blocks_grid_for_stl_is_its_label_smoothing(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["tiny"][0]["beta"] = {"stl": [0.0, 0.1], "kd": [1.0, 10.0]}
    cfg = validate_config(cfg)
    stl = {r.beta: r for r in expand_sweep(cfg) if r.method == "stl" and r.dataset == "digits" and r.seed == 0}
    plain = validate_config(tiny_config(text_tsv))
    same = next(r for r in expand_sweep(plain) if r.method == "stl" and r.dataset == "digits" and r.seed == 0)
    assert train_spec(cfg, stl[0.0]) == train_spec(plain, same)  # the 0 run is plain STL's run, shared
    assert train_spec(cfg, stl[0.1])["method"]["label_smoothing"] == 0.1
    assert planned_budgets(cfg)[0] == {"stl": 2, "kd": 2, "aft": 2, "probe": 2}


def test_a_baselines_block_grid_above_one_is_refused(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["tiny"][0]["beta"] = {"stl": [0.0, 1.5]}
    with pytest.raises(ConfigError, match=r"beta.stl: a baseline's grid is its label smoothing"):
        validate_config(cfg)
