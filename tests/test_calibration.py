"""The claims' error rates on simulated sweeps shaped like the default one (the small version of
benchmarks/calibration.py), and which figures a sweep's shape supports."""

import sys
from pathlib import Path

import pytest

from aftbench.config.check import validate_config
from aftbench.config.load import load_config
from aftbench.report.drawable import figure_gaps
from aftbench.sweep.shape import kept_runs, planned_runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import calibration  # noqa: E402


@pytest.fixture(scope="module")
def config():
    return validate_config(load_config([str(ROOT / "config.yaml")], []))


def test_the_default_sweeps_shape_is_what_it_plans(config):
    shape = planned_runs(config, "offline")
    kept = kept_runs(shape)
    # 93 runs (90 training runs over 2 configurations each, 3 probes): 45 kept + 3 probes
    assert len(shape) == 93 and len(kept) == 48
    assert set(kept[kept.control_teacher].teacher_set) == {"noise_of_lite2", "noise_of_minilm", "noise_of_lite0_minilm"}
    five = kept_runs(planned_runs(config, "offline", seeds=5))
    assert sorted(five[five.role != "probe"].seed.unique()) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_no_effect_gives_few_decisive_verdicts_and_a_true_effect_is_found(config):
    """60 null sweeps shaped like the default (3 datasets, shared STL, 3 seeds, noise scales
    measured on its runs): the family-wise rate of any decisive verdict is near 5% (binomial(60,
    0.05) exceeds 8 with probability 0.5%); a 3-point AFT gain with 5 seeds is found on every
    single-dataset scope in most sweeps."""
    null = calibration.calibrate(kept_runs(planned_runs(config, "offline")), 60)
    rate, _, n = calibration.family_error(null)
    assert n == 60 and rate * n <= 8
    alt = calibration.calibrate(kept_runs(planned_runs(config, "offline", seeds=5)), 30, effect=3.0)
    power = calibration.power(alt).set_index(["scope", "statistic"]).supported
    assert power[("text", "AFT − STL (points)")] >= 0.8
    assert power[("all", "AFT − STL (points)")] <= power[("text", "AFT − STL (points)")]  # datasets are the unit


def test_a_sweep_draws_only_the_figures_its_shape_supports(config):
    gaps = figure_gaps(planned_runs(config, "offline"), config.get("headline_sets"))
    assert {f for f, why in gaps.items() if why} == {
        "student_vs_probe",
        "accuracy_vs_size",
        "single_vs_union",
        "score_vs_student",
    }
    assert "≥ 3 probed pre-trained teacher sets" in gaps["student_vs_probe"]
    ladder = figure_gaps(planned_runs(config, "offline_pretrained"), config.get("headline_sets"))
    assert {f for f, why in ladder.items() if why} == {"accuracy_vs_size"}
