"""Paired statistics and the generated claims, on hand-made sweeps with known answers."""

import numpy as np
import pandas as pd
import pytest
from fake_runs import fake_sweep, write_run
from scipy import stats as sps

from aftbench.report import stats
from aftbench.report.build import build_report, collect_runs
from aftbench.report.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, claims_table, write_claims
from aftbench.report.tables import main_table


def claim(table, number, scope="all", statistic=None):
    rows = table[table.claim.str.startswith(f"{number}.") & (table.scope == scope)]
    if statistic:
        rows = rows[rows.statistic.str.contains(statistic, regex=False)]
    return rows


@pytest.mark.parametrize(
    "gain, expected",
    [(0.05, SUPPORTED), (0.0, INCONCLUSIVE), (-0.05, CONTRADICTED)],
    ids=["aft-clearly-better", "pure-noise", "aft-clearly-worse"],
)
def test_aft_beats_every_baseline_verdict(tmp_path, gain, expected):
    runs = collect_runs(fake_sweep(tmp_path, {"kd": 0.0, "aft": gain}))
    table = claims_table(runs)
    summary = claim(table, 1, statistic="summary")
    assert summary.verdict.tolist() == [expected]
    for scope in ("image", "text"):  # per modality too
        assert claim(table, 1, scope, "summary").verdict.tolist() == [expected]
    p_stl = claim(table, 1, statistic="> STL").iloc[0]
    assert p_stl.n_cells == 4 and p_stl.n_runs == 20
    assert (p_stl.estimate > 0.9) if gain > 0 else (p_stl.estimate < 0.1) if gain < 0 else (0.2 < p_stl.estimate < 0.8)


def test_a_claim_without_its_runs_says_so(tmp_path):
    runs = collect_runs(fake_sweep(tmp_path, {"kd": 0.0, "aft": 0.05}))
    table = claims_table(runs)
    # two teacher sets per student (a ladder needs three), no union, no control
    for n in (2, 3):
        assert claim(table, n).verdict.tolist() == ["not in this sweep"]
    assert claim(table, 4).verdict.tolist() == ["not in this sweep"] * 3
    no_aft = claims_table(collect_runs(fake_sweep(tmp_path / "k", {"kd": 0.01})))
    assert set(no_aft.verdict) == {"not in this sweep"}


def test_stronger_teacher_slope_complementarity_and_controls(tmp_path):
    sets = {
        "weak": (["a"], 0.60, [True]),
        "mid": (["b"], 0.75, [True]),
        "strong": (["c"], 0.90, [True]),
        "union": (["b", "c"], 0.92, [True]),
        "random": (["r"], 0.30, [False]),
        "noise_of_strong": (["c"], 0.10, [False]),  # strong's matched noise null (its "probe": chance)
    }
    gains = {"kd": 0.0, "aft": lambda probe: 0.2 * (probe - 0.6)}  # AFT: +2 points per 10 probe points
    runs = collect_runs(fake_sweep(tmp_path, gains, sets=sets, cells=(("d1", "image"),), noise=0.003))
    table = claims_table(runs)
    slope = claim(table, 2, "AFT", "slope").iloc[0]
    assert slope.verdict == SUPPORTED and slope.estimate == pytest.approx(0.2, abs=0.03)
    kd = claim(table, 2, "KD", "slope").iloc[0]  # flat by construction: near 0, never "supported"
    assert abs(kd.estimate) < 0.03 and kd.verdict != SUPPORTED
    assert claim(table, 2, "AFT vs KD").verdict.iloc[0] == SUPPORTED
    # the union (probe 0.92 -> +6.4 points) beats its best member set (strong: +6.0) by 0.4 points
    union = claim(table, 3).iloc[0]
    assert union.estimate == pytest.approx(0.004, abs=0.003) and union.n_cells == 1
    twin = claim(table, 4, statistic="random-init twin").iloc[0]
    # against the strongest-probe real set (the union: +6.4 points) the random twin (−6.0) loses 12.4
    assert twin.verdict == SUPPORTED and twin.estimate == pytest.approx(0.124, abs=0.01) and twin.n_runs == 5
    null = claim(table, 4, statistic="matched noise null").iloc[0]
    # strong (+6.0 points) against its own null (−10.0), never against the union or the twin
    assert null.verdict == SUPPORTED and null.estimate == pytest.approx(0.16, abs=0.01) and null.n_cells == 1


def test_interval_helpers_match_direct_computation():
    x = np.array([0.3, 0.9, 0.2, 0.8, 0.55])
    m, lo, hi = stats.t_interval(x)
    half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    assert (m, lo, hi) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half))
    assert stats.t_interval([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4, 0.4)) and np.isnan(stats.t_interval([0.1])[1])
    y = np.arange(20.0) ** 2
    assert stats.iqm(y) == pytest.approx(sps.trim_mean(y, 0.25))
    a, b = np.array([1.0, 2.0, 3.0, 5.0]), np.array([2.0, 2.0, 4.0])
    u = sps.mannwhitneyu(a, b).statistic / (len(a) * len(b))
    assert stats.probability_of_improvement([a], [b]) == pytest.approx(u)
    # the stratified bootstrap's interval equals a direct re-computation with the same draws
    tasks = [np.array([[1.0], [2.0], [4.0]]), np.array([[10.0], [11.0]])]
    est, lo, hi = stats.stratified_bootstrap(tasks, lambda ts: np.mean([t.mean() for t in ts]), reps=300, seed=3)
    rng = np.random.default_rng(3)
    draws = [np.mean([t[rng.integers(0, len(t), len(t))].mean() for t in tasks]) for _ in range(300)]
    assert est == pytest.approx((7 / 3 + 10.5) / 2) and (lo, hi) == pytest.approx(
        tuple(np.percentile(draws, [2.5, 97.5]))
    )


def test_table_bolds_only_a_separable_best_and_marks_ties(tmp_path):
    paths = []
    for s in range(4):
        base = 0.7 + 0.01 * s
        paths += [
            write_run(tmp_path, 10 * s, method="stl", teachers=[], teacher_set="none", beta=0.0, seed=s, test_acc=base),
            write_run(tmp_path, 10 * s + 1, method="kd", seed=s, test_acc=base + 0.02 + 0.001 * (-1) ** s),
            write_run(tmp_path, 10 * s + 2, method="aft", seed=s, test_acc=base + 0.02 - 0.001 * (-1) ** s),
        ]
    row = main_table(collect_runs(paths)).iloc[0]
    assert row.best == "" and set(row.ties.split()) == {"kd", "aft"}  # same mean: not separable
    assert row.kd_d == pytest.approx(0.02) and row.kd_dlo > 0  # both clearly above STL, paired
    paths.append(write_run(tmp_path, 99, method="rkd", penalty="rkd", seed=0, test_acc=0.9))
    paths += [
        write_run(tmp_path, 100 + s, method="rkd", penalty="rkd", seed=s, test_acc=0.8 + 0.01 * s) for s in range(1, 4)
    ]
    row = main_table(collect_runs(paths)).iloc[0]
    assert row.best == "rkd" and "rkd" not in row.ties.split()


@pytest.mark.slow
def test_claims_files_and_report_are_written(tmp_path):
    paths = fake_sweep(tmp_path / "runs", {"kd": 0.0, "aft": 0.05})
    build_report(paths, str(tmp_path / "out"))
    md = (tmp_path / "out" / "tables" / "claims.md").read_text()
    assert "1. AFT beats every baseline" in md and SUPPORTED in md and "not in this sweep" in md
    assert pd.read_csv(tmp_path / "out" / "tables" / "claims.csv").verdict.notna().all()
    assert "\\begin{tabular}" in (tmp_path / "out" / "tables" / "claims.tex").read_text()
    figs = {p.name for p in (tmp_path / "out" / "figures").iterdir()}
    assert {"d1_difference.png", "d1_difference.pdf", "ranks.png", "improvement_probability.png"} <= figs
    write_claims(collect_runs(paths), tmp_path / "again")  # regenerates from the runs alone
    assert (tmp_path / "again" / "tables" / "claims.md").read_text() == md


def test_a_sweep_without_stl_still_reports(tmp_path):
    """No baseline runs (e.g. a sweep of transfer methods only): every table, figure and claim is
    written, saying what is missing instead of failing."""
    paths = [write_run(tmp_path, s, method="aft", seed=s, test_acc=0.7 + 0.01 * s) for s in range(3)]
    paths += [write_run(tmp_path, 10 + s, method="kd", seed=s, test_acc=0.69) for s in range(3)]
    build_report(paths, str(tmp_path / "out"))
    assert (tmp_path / "out" / "figures" / "d_difference.png").exists()
    assert "not in this sweep" in (tmp_path / "out" / "tables" / "claims.md").read_text()
