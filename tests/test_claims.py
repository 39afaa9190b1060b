"""Paired statistics and the generated claims, on hand-made sweeps with known answers."""

import numpy as np
import pandas as pd
import pytest
from fake_runs import fake_sweep, runs_frame, write_run
from scipy import stats as sps

from aftbench.report import stats
from aftbench.report.build import build_report, collect_runs
from aftbench.report.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, TOO_FEW, claims_table, write_claims
from aftbench.report.tables import main_table


def claim(table, number, scope="all", statistic=None):
    rows = table[table.claim.str.startswith(f"{number}.") & (table.scope == scope)]
    if statistic:
        rows = rows[rows.statistic.str.contains(statistic, regex=False)]
    return rows


THREE = (("d1", "image"), ("d2", "text"), ("d3", "image"))


@pytest.mark.parametrize(
    "gain, expected",
    [(0.05, SUPPORTED), (0.0, INCONCLUSIVE), (-0.05, CONTRADICTED)],
    ids=["aft-clearly-better", "pure-noise", "aft-clearly-worse"],
)
def test_aft_beats_every_baseline_verdict(tmp_path, gain, expected):
    runs = collect_runs(fake_sweep(tmp_path, {"kd": 0.0, "aft": gain}, cells=THREE))
    table = claims_table(runs)
    assert claim(table, 1, statistic="summary").verdict.tolist() == [expected]
    # per modality too: text is one dataset (seeds are its unit); image's two datasets give a t
    # interval with df 1, too wide for a 5-point effect against 1 point of dataset-to-dataset spread
    assert claim(table, 1, "text", "summary").verdict.tolist() == [expected]
    assert claim(table, 1, "image", "− STL").n_datasets.tolist() == [2]
    d_stl = claim(table, 1, statistic="− STL").iloc[0]
    # 3 datasets × 2 teacher sets, 5 seeds each; the unit across datasets is the dataset
    assert (d_stl.n_datasets, d_stl.n_cells, d_stl.n_seeds, d_stl.df) == (3, 6, 15, 2)
    assert d_stl.estimate == pytest.approx(100 * gain, abs=1.0)  # points
    if gain:
        assert d_stl.prob == (1.0 if gain > 0 else 0.0)


def test_same_seed_pairs_give_the_printed_probability_its_own_interval(tmp_path):
    """AFT 3 points above KD on every seed of every cell: P(AFT > KD) is 1 (not the 0.955 of
    comparing seed i with seed j), and its interval holds it: 5 of 5 seeds (Clopper–Pearson)."""
    gains = {"kd": 0.0, "aft": 0.03}
    runs = collect_runs(fake_sweep(tmp_path, gains, cells=(("d1", "image"),), noise=0.0))
    runs.loc[runs.method == "kd", "test_acc"] += np.linspace(-0.01, 0.01, (runs.method == "kd").sum())
    kd = runs[runs.method == "kd"].set_index(["teacher_set", "seed"]).test_acc
    aft = runs.method == "aft"
    runs.loc[aft, "test_acc"] = [kd[(t, s)] + 0.03 for t, s in zip(runs[aft].teacher_set, runs[aft].seed, strict=True)]
    row = claim(claims_table(runs), 1, "all", "− KD").iloc[0]
    assert (row.prob, row.prob_high) == (1.0, 1.0)
    assert row.prob_low == pytest.approx(sps.binomtest(5, 5).proportion_ci(0.95).low)
    assert row.estimate == pytest.approx(3.0) and row.verdict == SUPPORTED


def test_one_cell_five_seeds_with_an_exact_p_of_0_4_is_not_decisive(tmp_path):
    """The issue's case: one cell, 5 seeds, where the exact test says p ≈ 0.4."""
    aft = [0.712, 0.698, 0.731, 0.705, 0.721]
    kd = [0.705, 0.709, 0.716, 0.689, 0.722]
    exact = sps.ttest_rel(aft, kd).pvalue
    assert 0.25 < exact < 0.6
    paths = []
    for s in range(5):
        paths.append(write_run(tmp_path, 3 * s, method="aft", seed=s, test_acc=aft[s], val_acc=aft[s]))
        paths.append(write_run(tmp_path, 3 * s + 1, method="kd", seed=s, test_acc=kd[s], val_acc=kd[s]))
        paths.append(
            write_run(
                tmp_path, 3 * s + 2, method="stl", teachers=[], teacher_set="none", beta=0.0, seed=s, test_acc=0.7
            )
        )
    row = claim(claims_table(collect_runs(paths)), 1, "all", "− KD").iloc[0]
    assert row.p == pytest.approx(exact) and row.verdict == INCONCLUSIVE


def test_too_few_seeds_says_so(tmp_path):
    runs = collect_runs(fake_sweep(tmp_path, {"kd": 0.0, "aft": 0.05}, n_seeds=2, cells=(("d1", "image"),)))
    row = claim(claims_table(runs), 1, "all", "− STL").iloc[0]
    assert row.verdict == TOO_FEW and "needs ≥ 3" in row.detail


def test_a_claim_without_its_runs_says_so(tmp_path):
    runs = collect_runs(fake_sweep(tmp_path, {"kd": 0.0, "aft": 0.05}))
    table = claims_table(runs)
    # two teacher sets per student: a ladder needs three
    ladder = claim(table, 2)
    assert set(ladder.verdict) == {"not in this sweep"} and "≥ 3 pre-trained teacher sets" in ladder.statistic.iloc[0]
    # three sets on one student: a ladder, but its slope has 1 residual df (a verdict needs 2)
    three = {k: (v[0], p, [True]) for (k, v), p in zip(LADDER.items(), (0.6, 0.75, 0.9), strict=False)}
    short = claims_table(collect_runs(fake_sweep(tmp_path / "s", {"aft": 0.0}, sets=three, cells=(("d1", "image"),))))
    row = claim(short, 2, "AFT").iloc[0]
    assert row.verdict == TOO_FEW and "residual df" in row.detail and not np.isnan(row.estimate)
    assert claim(table, 3).verdict.tolist() == ["not in this sweep"]  # no union
    assert claim(table, 4).verdict.tolist() == ["not in this sweep"] * 3  # no control
    no_aft = claims_table(collect_runs(fake_sweep(tmp_path / "k", {"kd": 0.01})))
    assert set(no_aft.verdict) == {"not in this sweep"}


LADDER = {
    "weak": (["a"], 0.60, [True]),
    "mid": (["b"], 0.75, [True]),
    "strong": (["c"], 0.90, [True]),
    "union": (["b", "c"], 0.92, [True]),
    "random": (["r"], 0.30, [False]),
    "noise_of_strong": (["c"], 0.10, [False]),  # strong's matched noise null (its "probe": chance)
}


def test_stronger_teacher_slope_complementarity_and_controls(tmp_path):
    gains = {"kd": 0.0, "aft": lambda probe: 0.2 * (probe - 0.6)}  # AFT: +2 points per 10 probe points
    runs = collect_runs(fake_sweep(tmp_path, gains, sets=LADDER, cells=(("d1", "image"),), noise=0.003))
    table = claims_table(runs)
    slope = claim(table, 2, "AFT", "slope").iloc[0]
    # 4 real sets (weak, mid, strong, union; the random twin and the null are controls): df 4 − 1 − 1
    assert slope.verdict == SUPPORTED and slope.estimate == pytest.approx(0.2, abs=0.03)
    assert (slope.n_cells, slope.df) == (4, 2)
    kd = claim(table, 2, "KD", "slope").iloc[0]  # flat by construction: near 0, never "supported"
    assert abs(kd.estimate) < 0.03 and kd.verdict != SUPPORTED
    assert claim(table, 2, "AFT vs KD").verdict.iloc[0] == SUPPORTED
    # the union (probe 0.92 -> +6.4 points) beats its best member set (strong: +6.0) by 0.4 points
    union = claim(table, 3).iloc[0]
    assert union.estimate == pytest.approx(0.4, abs=0.3) and union.n_cells == 1
    twin = claim(table, 4, statistic="random-init twin").iloc[0]
    # against the strongest-probe real set (the union: +6.4 points) the random twin (−6.0) loses 12.4
    assert twin.verdict == SUPPORTED and twin.estimate == pytest.approx(12.4, abs=1) and twin.n_seeds == 5
    null = claim(table, 4, statistic="matched noise null").iloc[0]
    # strong (+6.0 points) against its own null (−10.0), never against the union or the twin
    assert null.verdict == SUPPORTED and null.estimate == pytest.approx(16, abs=1) and null.n_cells == 1


def test_all_equal_teacher_sets_are_never_contradicted(tmp_path):
    """Every set, union and control equally good: the union is compared with a member chosen on
    other seeds' validation accuracy, so nothing is biased against it (issue 28: 'contradicted')."""
    sets = {k: (v[0], 0.8, v[2]) for k, v in LADDER.items()}
    for seed in range(4):
        runs = collect_runs(fake_sweep(tmp_path / str(seed), {"kd": 0.0, "aft": 0.0}, sets=sets, seed=seed))
        table = claims_table(runs)
        assert CONTRADICTED not in set(table.verdict), table[table.verdict == CONTRADICTED]


def test_a_null_ladder_with_teacher_set_effects_is_not_decisive():
    """Teacher sets that differ in how much they help, unrelated to their probe accuracy, with
    little seed noise: a per-seed bootstrap calls the slope decisive in half such sweeps; the
    slope's unit is the teacher set, so it may not."""
    rng = np.random.default_rng(7)
    decisive = 0
    for _ in range(20):
        records = []
        probes = rng.uniform(0.5, 0.9, 6)
        effect = rng.normal(0, 0.02, 6)  # 2 points of teacher-set effect, independent of the probe
        for j, p in enumerate(probes):
            records.append(
                dict(
                    method="probe",
                    role="probe",
                    student="probe",
                    teacher_set=f"t{j}",
                    teachers=f"x{j}",
                    seed=0,
                    test_acc=p,
                )
            )
            for s in range(5):
                acc = 0.7 + effect[j] + rng.normal(0, 0.002)
                records.append(dict(method="aft", teacher_set=f"t{j}", teachers=f"x{j}", seed=s, test_acc=acc))
        for s in range(5):
            records.append(dict(method="stl", teacher_set="none", teachers="none", seed=s, test_acc=0.7))
        runs = runs_frame(records).assign(modality="image", control_teacher=False, rho_by_teacher=None)
        row = claim(claims_table(runs), 2, "AFT", "slope").iloc[0]
        decisive += row.verdict in (SUPPORTED, CONTRADICTED)
    assert decisive <= 3  # 5% of 20 is 1; a binomial(20, 0.05) exceeds 3 with probability 1.6%


def test_interval_helpers_match_direct_computation():
    x = np.array([0.3, 0.9, 0.2, 0.8, 0.55])
    m, lo, hi = stats.t_interval(x)
    half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    assert (m, lo, hi) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half))
    assert stats.t_interval([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4, 0.4)) and np.isnan(stats.t_interval([0.1])[1])


def test_table_bolds_the_best_and_marks_what_is_not_separable_from_it(tmp_path):
    paths = []
    for s in range(4):
        base = 0.7 + 0.01 * s
        paths += [
            write_run(tmp_path, 10 * s, method="stl", teachers=[], teacher_set="none", beta=0.0, seed=s, test_acc=base),
            write_run(tmp_path, 10 * s + 1, method="kd", seed=s, test_acc=base + 0.02 + 0.001 * (-1) ** s),
            write_run(tmp_path, 10 * s + 2, method="aft", seed=s, test_acc=base + 0.02 - 0.001 * (-1) ** s),
        ]
    row = main_table(collect_runs(paths)).iloc[0]
    # same mean: the bold one is either, the other is marked ≈ (not separable from it)
    assert {row.best, *row.ties.split()} == {"kd", "aft"} and len(row.ties.split()) == 1
    assert row.kd_d == pytest.approx(0.02) and row.kd_dlo > 0  # both clearly above STL, paired
    paths.append(write_run(tmp_path, 99, method="rkd", penalty="rkd", seed=0, test_acc=0.9))
    paths += [
        write_run(tmp_path, 100 + s, method="rkd", penalty="rkd", seed=s, test_acc=0.8 + 0.01 * s) for s in range(1, 4)
    ]
    row = main_table(collect_runs(paths)).iloc[0]
    assert row.best == "rkd" and "rkd" not in row.ties.split()


def test_a_method_missing_a_seed_leaves_every_other_methods_interval_on_all_its_seeds(tmp_path):
    """The Δ beside a mean is for that mean's seeds: a run missing from one method of the row (a
    sweep still running, a failed job) must not drop the seed from every other method's pair."""
    kd_gain = [0.01, 0.03, -0.02, 0.04, 0.00]
    paths = []
    for s, g in enumerate(kd_gain):
        base = 0.7 + 0.01 * s
        paths += [
            write_run(tmp_path, 10 * s, method="stl", teachers=[], teacher_set="none", beta=0.0, seed=s, test_acc=base),
            write_run(tmp_path, 10 * s + 1, method="kd", seed=s, test_acc=base + g),
        ]
        if s != 3:  # VkD's seed-3 run is missing
            paths.append(write_run(tmp_path, 10 * s + 2, method="vkd", seed=s, test_acc=base + 0.01))
    row = main_table(collect_runs(paths)).iloc[0]
    assert row.kd_n == 5 and row.vkd_n == 4
    assert (row.kd_d, row.kd_dlo, row.kd_dhi) == pytest.approx(stats.t_interval(kd_gain))
    assert row.vkd_d == pytest.approx(0.01)


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
    again = (tmp_path / "again" / "tables" / "claims.md").read_text()
    assert (
        md.startswith(again) and "## Figures this sweep cannot support" in md
    )  # build_report adds what it did not draw
    assert (
        "`single_vs_union.png`: no pre-trained union" in md
        and not (tmp_path / "out" / "figures" / "single_vs_union.png").exists()
    )


def test_a_sweep_without_stl_still_reports(tmp_path):
    """No baseline runs (e.g. a sweep of transfer methods only): every table, figure and claim is
    written, saying what is missing instead of failing."""
    paths = [write_run(tmp_path, s, method="aft", seed=s, test_acc=0.7 + 0.01 * s) for s in range(3)]
    paths += [write_run(tmp_path, 10 + s, method="kd", seed=s, test_acc=0.69) for s in range(3)]
    build_report(paths, str(tmp_path / "out"))
    assert (tmp_path / "out" / "figures" / "d_difference.png").exists()
    assert "not in this sweep" in (tmp_path / "out" / "tables" / "claims.md").read_text()


def test_the_rank_figure_of_cells_sharing_only_two_methods_says_so(tmp_path):
    """Cells with different method sets (a union cell without VkD, a strongest-set cell with it)
    leave two methods in every cell: autorank then tests them but draws no diagram."""
    from aftbench.report.stat_figures import ranks

    rows = [
        dict(
            dataset=f"d{c}",
            student="s",
            method=m,
            teacher_set="t",
            seed=s,
            test_acc=0.7 + 0.01 * s + (m == "aft") * 0.02,
            control_teacher=False,
        )
        for c in range(6)
        for m in ("stl", "aft", *(("vkd",) if c % 2 else ("kd",)))
        for s in range(3)
    ]
    ranks(runs_frame(rows), str(tmp_path / "ranks.png"))
    assert (tmp_path / "ranks.png").stat().st_size > 0
