"""Aggregation: β selection uses validation only; tables mark the best; mean ± std over seeds."""

import pandas as pd
import pytest
from fake_runs import write_run

from aftbench.report.build import collect_runs, select_beta
from aftbench.report.tables import main_table


def test_beta_selected_on_validation_not_test(tmp_path):
    paths = [
        write_run(tmp_path, 0, beta=0.1, val_acc=0.70, test_acc=0.90),  # best test, worse val
        write_run(tmp_path, 1, beta=1.0, val_acc=0.80, test_acc=0.60),  # best val -> selected
        write_run(tmp_path, 2, beta=10.0, val_acc=0.80, test_acc=0.95),  # tie on val: smaller β wins
        write_run(tmp_path, 3, beta=0.1, val_acc=0.60, test_acc=0.61, seed=1),
        write_run(tmp_path, 4, beta=1.0, val_acc=0.65, test_acc=0.62, seed=1),
        write_run(tmp_path, 5, method="stl", teachers=[], teacher_set="none", beta=0.0, val_acc=0.6, test_acc=0.55),
        write_run(
            tmp_path, 6, method="stl", teachers=[], teacher_set="none", beta=0.0, val_acc=0.6, test_acc=0.57, seed=1
        ),
    ]
    runs = collect_runs(paths)
    chosen = runs[runs.selected & (runs.method == "aft")].set_index("seed").beta
    assert chosen.to_dict() == {0: 1.0, 1: 1.0}
    t = main_table(runs).iloc[0]
    assert t.aft_mean == pytest.approx((0.60 + 0.62) / 2) and t.aft_n == 2
    assert t.stl_mean == pytest.approx(0.56) and t.best == "aft"


def test_select_beta_is_per_seed_and_student():
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "student": ["a", "a", "b", "b"],
            "method": "kd",
            "teacher_set": "t",
            "seed": 0,
            "beta": [1.0, 2.0, 1.0, 2.0],
            "val_acc": [0.1, 0.2, 0.4, 0.3],
        }
    )
    assert select_beta(runs).tolist() == [False, True, True, False]


def test_normalized_errors_relative_to_stl_on_the_same_seed(tmp_path):
    from aftbench.report.stat_figures import normalized_errors

    paths = [
        write_run(tmp_path, 0, method="stl", teachers=[], teacher_set="none", beta=0.0, test_acc=0.80),
        write_run(tmp_path, 1, method="stl", teachers=[], teacher_set="none", beta=0.0, test_acc=0.70, seed=1),
        write_run(tmp_path, 2, method="aft", test_acc=0.85),
        write_run(tmp_path, 3, method="aft", test_acc=0.79, seed=1),
        write_run(tmp_path, 4, method="kd", test_acc=0.75),
    ]
    runs = collect_runs(paths)
    [cell] = normalized_errors(runs, ["aft"], "stl").values()
    assert cell.aft.tolist() == pytest.approx([(1 - 0.85) / (1 - 0.80), (1 - 0.79) / (1 - 0.70)])  # paired by seed
    [kd] = normalized_errors(runs, ["kd"], "stl").values()
    assert kd.kd.tolist() == pytest.approx([(1 - 0.75) / (1 - 0.80)])  # seed 1 has no kd run: left out


def test_beta_gains_are_relative_to_stl_of_the_same_student_and_seed(tmp_path):
    from aftbench.report.figures import beta_gains

    stl = dict(method="stl", teachers=[], teacher_set="none", beta=0.0)
    paths = [
        write_run(tmp_path, 0, student="small", val_acc=0.40, **stl),
        write_run(tmp_path, 1, student="small", val_acc=0.50, seed=1, **stl),
        write_run(tmp_path, 2, student="big", val_acc=0.80, **stl),
        write_run(tmp_path, 3, student="small", beta=0.1, val_acc=0.45),
        write_run(tmp_path, 4, student="small", beta=10.0, val_acc=0.30, seed=1),
        write_run(tmp_path, 5, student="big", beta=0.1, val_acc=0.70),
        write_run(tmp_path, 6, student="big", beta=10.0, val_acc=0.90, seed=1),  # no STL run for big, seed 1
        write_run(tmp_path, 7, method="kd", student="big", beta=1.0, val_acc=0.9),
    ]  # one β only
    g = beta_gains(collect_runs(paths)).set_index("run_id").gain
    assert g.to_dict() == pytest.approx({"r3": 5.0, "r4": -20.0, "r5": -10.0})


def test_claim_figures_when_no_method_has_a_beta_grid_or_a_probe(tmp_path):
    """A sweep with one β per method and no probes (the SLURM test's): every claim figure is
    still written, saying what is missing."""
    from aftbench.core.layout import CLAIM_FIGURES
    from aftbench.report.figures import beta_gains
    from aftbench.report.stat_figures import claim_figures

    stl = dict(method="stl", teachers=[], teacher_set="none", beta=0.0)
    runs = collect_runs([write_run(tmp_path, 0, **stl), write_run(tmp_path, 1, beta=1.0)])
    assert beta_gains(runs).empty
    claim_figures(runs, str(tmp_path / "figs"))
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(
        f"{n}.{ext}" for n in CLAIM_FIGURES for ext in ("png", "pdf")
    )
