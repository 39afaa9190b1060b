"""Which teachers, before training: the transferability scores (aftbench.selection.transferability), the
score and selection steps (aftbench.selection.scores), adaptive sweep blocks (aftbench.selection.adaptive, aftbench.sweep.expand) and
the report's score-vs-student analysis (aftbench.report.scores)."""

import copy

import numpy as np
import pandas as pd
import pytest

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError, schema
from aftbench.selection.adaptive import SelectionFileError, selection_requests, union_set
from aftbench.selection.transferability import SCORE_NAMES, rank_sets, transferability
from aftbench.sweep.expand import expand_sweep, planned_bound
from aftbench.sweep.runs import teachers_of

SETTINGS = {"max_examples": 10000, "holdout": 0.2, "knn_k": 10, "probe_C": 1.0, "seed": 0}


def synthetic(n=400, d=12, seed=0):
    """Labels, and three teachers: informative (class means + noise), random (a weak random map
    of a noisy copy of the class signal) and pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    signal = np.eye(4)[y] @ rng.standard_normal((4, d))
    good = signal + 0.5 * rng.standard_normal((n, d))
    weak = np.tanh((0.2 * signal + rng.standard_normal((n, d))) @ rng.standard_normal((d, d)))
    noise = rng.standard_normal((n, d))
    return y, {"good": good, "random": weak, "noise": noise}


def test_schema_offers_exactly_the_scores_the_code_computes():
    enum = schema()["$defs"]["select"]["properties"]["select"]["properties"]["by"]["enum"]
    assert tuple(enum) == SCORE_NAMES


@pytest.mark.parametrize("score", SCORE_NAMES)
def test_every_score_ranks_informative_over_random_over_noise(score):
    y, teachers = synthetic()
    scores = {t: transferability(f, y, **SETTINGS)["scores"] for t, f in teachers.items()}
    assert rank_sets(scores, score, ["noise", "random", "good"]) == ["good", "random", "noise"]


def test_scores_are_scale_free_per_column_and_bounded_where_they_should_be():
    y, teachers = synthetic()
    f = teachers["good"]
    a = transferability(f, y, **SETTINGS)["scores"]
    b = transferability(f * np.linspace(0.01, 100, f.shape[1]), y, **SETTINGS)["scores"]  # columns standardised first
    assert a == pytest.approx(b, rel=1e-6)
    assert 0 <= a["probe"] <= 1 and 0 <= a["knn"] <= 1 and 0 <= a["alignment"] <= 1


def test_kernel_alignment_matches_the_n_by_n_definition():
    from aftbench.selection.transferability import kernel_alignment

    rng = np.random.default_rng(1)
    f, y = rng.standard_normal((30, 5)), rng.integers(0, 3, 30)
    h = np.eye(30) - 1 / 30
    k, l_ = h @ f @ f.T @ h, h @ np.eye(3)[y] @ np.eye(3)[y].T @ h
    direct = (k * l_).sum() / (np.linalg.norm(k) * np.linalg.norm(l_))
    assert kernel_alignment(f, y) == pytest.approx(direct, rel=1e-9)


def test_h_score_of_class_means_beats_noise_and_a_copy_does_not_change_it_much():
    from aftbench.selection.transferability import h_score

    y, teachers = synthetic()
    assert h_score(teachers["good"], y) > 5 * h_score(teachers["noise"], y)


def test_scores_refuse_non_finite_features_and_a_single_class():
    y, teachers = synthetic()
    bad = teachers["good"].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        transferability(bad, y, **SETTINGS)
    with pytest.raises(ValueError, match="two classes"):
        transferability(teachers["good"], np.zeros_like(y), **SETTINGS)
    with pytest.raises(ValueError, match=r"not finite for teacher set\(s\) \['b'\]"):
        rank_sets({"a": {"logme": 1.0}, "b": {"logme": float("nan")}}, "logme", ["a", "b"])


def test_subsample_keeps_at_most_max_examples_and_every_class():
    from aftbench.selection.transferability import subsample

    y = np.repeat(np.arange(5), [500, 300, 100, 60, 40])
    idx = subsample(y, 200, 0)
    assert len(idx) == 200 and set(y[idx]) == set(range(5))
    assert len(subsample(y, 5000, 0)) == len(y)


def test_rank_ties_keep_the_config_order():
    scores = {"a": {"knn": 0.5}, "b": {"knn": 0.7}, "c": {"knn": 0.5}}
    assert rank_sets(scores, "knn", ["c", "a", "b"]) == ["b", "c", "a"]


# ----------------------------------------------------------------------------- rank statistics
def test_vectorised_rank_correlations_match_scipy():
    from scipy import stats

    from aftbench.report.scores import kendall_tau_b, spearman_rho

    rng = np.random.default_rng(0)
    x = np.array([0.1, 0.4, 0.4, 0.9, 0.2, 0.7])
    y = np.round(rng.standard_normal((20, 6)), 1)  # ties in y too
    y[0] = y[0, 0]  # a constant row: undefined
    tau, rho = kendall_tau_b(x, y), spearman_rho(x, y)
    assert np.isnan(tau[0]) and np.isnan(rho[0])
    for row, t, r in zip(y[1:], tau[1:], rho[1:], strict=True):
        assert t == pytest.approx(stats.kendalltau(x, row).statistic, abs=1e-12)
        assert r == pytest.approx(stats.spearmanr(x, row).statistic, abs=1e-12)


def test_top_k_regret():
    from aftbench.report.scores import top_k_regret

    x = np.array([3.0, 2.0, 1.0])  # the score ranks set 0 first
    y = np.array([[0.80, 0.90, 0.70], [0.95, 0.90, 0.70]])
    np.testing.assert_allclose(top_k_regret(x, y, 1), [0.10, 0.0])
    np.testing.assert_allclose(top_k_regret(x, y, 2), [0.0, 0.0])


def _runs_and_scores(tmp_path, agree: bool):
    """Fake runs of one (dataset, student) on four teacher sets whose AFT accuracy rises with the
    set's probe accuracy; the score ranks the sets in that order (agree) or the reverse."""
    from fake_runs import fake_sweep

    from aftbench.report.build import collect_runs

    probes = {"s1": 0.70, "s2": 0.75, "s3": 0.80, "s4": 0.85}
    sets = {ts: ([f"t_{ts}"], p, [True]) for ts, p in probes.items()}
    gain = lambda p: p - 0.6  # noqa: E731
    paths = fake_sweep(tmp_path, {"aft": gain, "kd": gain}, n_seeds=3, noise=0.001, cells=(("d", "image"),), sets=sets)
    runs = collect_runs(paths)
    rank = [1, 2, 3, 4] if agree else [4, 3, 2, 1]
    scores = pd.DataFrame(
        [
            {"dataset": "d", "teacher_set": ts, **{s: float(r) for s in SCORE_NAMES}}
            for ts, r in zip(probes, rank, strict=True)
        ]
    )
    return runs, scores


@pytest.mark.parametrize("agree", [True, False])
def test_prediction_table_sign_and_regret_follow_the_outcomes(agree, tmp_path):
    from aftbench.report.scores import prediction_table

    runs, scores = _runs_and_scores(tmp_path, agree)
    t = prediction_table(runs, scores, reps=200)
    aft = t[(t.method == "aft") & (t.score == "logme") & (t.scope == "all")].set_index("stat")
    assert aft.loc["kendall", "estimate"] == pytest.approx(1.0 if agree else -1.0, abs=0.01)
    assert aft.loc["regret@1", "estimate"] == pytest.approx(0.0 if agree else 15.0, abs=0.5)
    assert aft.loc["kendall", "ci_low"] <= aft.loc["kendall", "estimate"] <= aft.loc["kendall", "ci_high"]
    assert set(t.method) == {"aft", "kd", "probe"}  # STL has no teacher set: nothing to correlate


# ----------------------------------------------------------------------------- adaptive blocks in the config
@pytest.fixture
def cfg():
    from aftbench.config.load import load_config

    return load_config(["config.yaml"], [])


def _adaptive(cfg, **select):
    c = copy.deepcopy(cfg)
    sel = {"candidates": ["lite0_random", "lite0_32", "lite1_64", "lite2"], "by": "logme", "top_k": 2, **select}
    c["sweeps"]["pick"] = [
        {
            "datasets": ["fmnist"],
            "students": ["lite0_b2"],
            "methods": ["stl", "aft", "probe"],
            "teacher_sets": {"select": sel},
            "seeds": [0, 1],
        }
    ]
    c["sweep"] = "pick"
    return c


def test_adaptive_block_plans_only_stl_until_selected_then_the_top_k_and_their_union(cfg):
    c = validate_config(_adaptive(cfg, union=True))
    before = expand_sweep(c, selections={})
    assert {r.method for r in before} == {"stl"} and len(before) == 2
    [req] = selection_requests(c)
    after = expand_sweep(c, selections={req.digest: ["lite2", "lite1_64"]})
    trained = {r.teacher_set for r in after if r.method == "aft"}
    assert trained == {"lite2", "lite1_64", "lite1_lite2"}  # the union is the configured set with those teachers
    assert {r.teacher_set for r in after if r.kind == "probe"} == trained
    assert planned_bound(c) == len(after) == 2 + 3 * 2 + 3
    assert not {"lite0_random", "lite0_32"} & {r.teacher_set for r in after}


def test_a_union_with_no_configured_twin_gets_a_joined_id_and_its_members_teachers(cfg):
    c = validate_config(_adaptive(cfg, union=True))
    assert union_set(c, ["lite0_32", "lite2"]) == "lite0_32+lite2"
    assert teachers_of(c, "lite0_32+lite2") == ["effnet_lite0_32", "effnet_lite2"]


def test_selection_digest_names_what_is_selected_and_how(cfg):
    a = selection_requests(validate_config(_adaptive(cfg)))[0]
    b = selection_requests(validate_config(_adaptive(cfg, by="knn")))[0]
    assert a.digest != b.digest and len(a.digest) == 8


@pytest.mark.parametrize(
    "select, match",
    [
        ({"candidates": ["lite2", "nope"]}, r"teacher_sets.select.candidates: unknown id 'nope'"),
        ({"top_k": 4}, r"top_k 4 selects every one of the 4 candidates"),
        ({"top_k": 1, "union": True}, r"the union of one set is that set"),
        ({"by": "leep"}, r"teacher_sets"),
    ],
)
def test_bad_adaptive_blocks_are_refused_before_any_job(cfg, select, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(_adaptive(cfg, **select))


def test_a_corrupt_or_foreign_selection_file_is_refused_naming_it(cfg, tmp_path, monkeypatch):
    from aftbench.core.io import write_json
    from aftbench.core.layout import selection_path
    from aftbench.selection.adaptive import known_selections

    monkeypatch.chdir(tmp_path)
    c = validate_config(_adaptive(cfg))
    [req] = selection_requests(c)
    path = selection_path(req.dataset, req.digest)
    assert known_selections(c) == {}
    write_json(path, {"selected": ["minilm"]})
    with pytest.raises(SelectionFileError, match=r"select~.*not among its candidates"):
        known_selections(c)
    (tmp_path / path).write_text("{not json")
    with pytest.raises(SelectionFileError, match="delete it to redo the selection"):
        known_selections(c)


# ----------------------------------------------------------------------------- the two DAG steps
@pytest.fixture(scope="module")
def scored(tmp_path_factory, digits_split):
    """Digits with three real feature caches: informative (a random projection of every pixel),
    random (a random map of a 2 × 2 thumbnail) and noise; each scored by the score step."""
    from aftbench.selection.scores import score_teacher_set
    from aftbench.teachers.extract import extract

    d = tmp_path_factory.mktemp("scored")
    teachers = {
        "good": {"backend": "random_projection", "args": {"dim": 32, "image_size": 8}},
        "rand": {"backend": "random_projection", "args": {"dim": 8, "image_size": 2, "seed": 1}},
        "noise": {"backend": "gaussian_noise", "args": {"dim": 16}},
    }
    paths = {}
    for t, spec in teachers.items():
        extract(t, spec, digits_split, str(d / f"{t}.safetensors"), str(d / f"{t}.json"))
        paths[t] = str(d / f"{t}_scores.json")
        score_teacher_set("digits", t, [t], digits_split, [str(d / f"{t}.safetensors")], {}, paths[t])
    return d, paths


def test_select_step_picks_the_informative_teacher_by_every_score(scored):
    from aftbench.selection.scores import select_teacher_sets

    d, paths = scored
    for s in SCORE_NAMES:
        req = {"dataset": "digits", "candidates": ["noise", "rand", "good"], "by": s, "top_k": 1, "union": False}
        rec = select_teacher_sets(req, list(paths.values()), str(d / f"sel_{s}.json"))
        assert rec["selected"] == ["good"] and rec["ranking"][-1] == "noise", (s, rec["scores"])


def test_scores_never_read_validation_or_test_features(scored, digits_split, tmp_path):
    """The score of a cache whose val and test matrices are replaced is the same."""
    from safetensors.numpy import load_file

    from aftbench.selection.scores import score_teacher_set
    from aftbench.teachers.extract import extract

    d, paths = scored
    out = tmp_path / "good.safetensors"
    spec = {"backend": "random_projection", "args": {"dim": 32, "image_size": 8}}
    extract("good", spec, digits_split, str(out), str(tmp_path / "good.json"))
    base = score_teacher_set("digits", "good", ["good"], digits_split, [str(out)], {}, str(tmp_path / "a.json"))
    import aftbench.selection.scores as ts

    real = ts.load_features

    def scrambled(*a, **k):
        cached = real(*a, **k)
        for s in ("val", "test"):
            cached.splits[s] = np.random.default_rng(0).standard_normal(cached.splits[s].shape).astype(np.float32)
        return cached

    ts.load_features = scrambled
    try:
        again = score_teacher_set("digits", "good", ["good"], digits_split, [str(out)], {}, str(tmp_path / "b.json"))
    finally:
        ts.load_features = real
    assert again["scores"] == base["scores"] and len(load_file(str(out))["train"]) == again["n_examples"]


def test_select_step_refuses_scores_of_another_dataset_or_a_missing_candidate(scored, tmp_path):
    from aftbench.core.io import read_json, write_json
    from aftbench.selection.scores import select_teacher_sets

    d, paths = scored
    req = {"dataset": "digits", "candidates": ["noise", "rand", "good"], "by": "logme", "top_k": 1, "union": False}
    with pytest.raises(ValueError, match=r"no scores for candidate\(s\) \['good'\]"):
        select_teacher_sets(req, [paths["noise"], paths["rand"]], str(tmp_path / "s.json"))
    other = read_json(paths["good"]) | {"dataset": "fmnist"}
    write_json(tmp_path / "other.json", other)
    with pytest.raises(ValueError, match="not a candidate of this selection"):
        select_teacher_sets(
            req, [paths["noise"], paths["rand"], str(tmp_path / "other.json")], str(tmp_path / "s.json")
        )
    stale = read_json(paths["good"]) | {"split_sha256": "0" * 64}
    write_json(tmp_path / "stale.json", stale)
    with pytest.raises(ValueError, match="scored on different splits"):
        select_teacher_sets(
            req, [paths["noise"], paths["rand"], str(tmp_path / "stale.json")], str(tmp_path / "s.json")
        )


# ----------------------------------------------------------------------------- the adaptive sweep, end to end
def adaptive_config():
    return {
        "sweep": "pick",
        "train": {"steps": 10, "batch_size": 32, "lr": 0.01, "log_every": 5, "threads": 1},
        "extract": {"threads": 1},
        "datasets": {
            "digits": {"loader": "sklearn_digits", "modality": "image", "n_train": 150, "n_val": 50, "n_test": 100}
        },
        "teachers": {
            "good": {"backend": "random_projection", "args": {"dim": 32, "image_size": 8}},
            "rand": {"backend": "random_projection", "args": {"dim": 8, "image_size": 2, "seed": 1}},
            "noise": {"backend": "gaussian_noise", "args": {"dim": 16}},
        },
        "teacher_sets": {"good": ["good"], "rand": ["rand"], "noise": ["noise"]},
        "students": {"cnn_t": {"arch": "cnn", "args": {"width": 4, "depth": 2, "image_size": 8}}},
        "methods": {
            "stl": {"kind": "train", "penalty": "none"},
            "aft": {"kind": "train", "penalty": "aft", "beta": 1.0},
            "probe": {"kind": "probe", "C_grid": [1.0]},
        },
        "sweeps": {
            "pick": [
                {
                    "datasets": ["digits"],
                    "students": ["cnn_t"],
                    "methods": ["stl", "aft", "probe"],
                    "teacher_sets": {"select": {"candidates": ["noise", "rand", "good"], "by": "logme", "top_k": 1}},
                    "seeds": [0],
                }
            ]
        },
    }


@pytest.mark.slow
def test_adaptive_sweep_scores_every_candidate_and_trains_only_the_selected(tmp_path):
    """The whole DAG: before scoring, the plan holds the scoring, the selection checkpoint and
    STL only; afterwards only the informative teacher was trained on (and probed), the selection
    and its scores are next to the results and named in the report, and a rerun does nothing."""
    import json

    import yaml
    from test_pipeline import planned, smk

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(adaptive_config(), sort_keys=False))
    plan = planned(tmp_path)
    assert plan["score_teachers"] == 3 and plan["select_teachers"] == 1 and plan["extract_features"] == 3
    assert plan["train"] == 1 and "probe" not in plan  # STL: the only run known before the selection
    smk(tmp_path)
    runs = tmp_path / "results" / "runs" / "dataset~digits"
    trained = sorted(
        p.parent.parent.parent.name for p in runs.glob("student~cnn_t/method~aft/*/beta~*/seed~*/metrics.json")
    )
    assert trained == ["teachers~good"]
    assert [p.name for p in runs.glob("student~probe/method~probe/*")] == ["teachers~good"]
    assert not list(runs.glob("**/teachers~rand")) and not list(runs.glob("**/teachers~noise"))
    [sel] = (tmp_path / "results" / "selections" / "dataset~digits").glob("select~*.json")
    rec = json.loads(sel.read_text())
    assert rec["selected"] == ["good"] and set(rec["scores"]) == {"good", "rand", "noise"}
    report = tmp_path / "results" / "reports" / "pick"
    md = (report / "tables" / "teacher_scores.md").read_text()
    assert "Selection on digits by logme" in md and "Scored, never trained on: noise, rand" in md
    scores = pd.read_csv(report / "tables" / "teacher_scores.csv")
    assert scores.set_index("teacher_set").selected_by.fillna("").to_dict()["good"].startswith("logme top-1")
    assert (report / "figures" / "teacher_scores.png").stat().st_size > 0
    assert planned(tmp_path) == {}


# ----------------------------------------------------------------------------- edge cases
def test_score_vs_student_figure_draws_every_cell(tmp_path):
    from aftbench.report.scores import prediction_table, score_vs_student_figure

    runs, scores = _runs_and_scores(tmp_path / "runs", True)
    out = tmp_path / "fig.png"
    score_vs_student_figure(runs, scores, str(out), prediction_table(runs, scores, reps=50))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20000  # panels, not a placeholder


@pytest.mark.parametrize("n, classes, max_examples", [(10050, 100, 10000), (1020, 102, 400)])
def test_many_classes_fall_back_to_a_plain_split_where_stratifying_cannot(n, classes, max_examples):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    f = np.eye(classes)[y][:, :16] + 0.1 * rng.standard_normal((n, 16))
    out = transferability(f, y, **{**SETTINGS, "max_examples": max_examples})
    assert out["n_examples"] == max_examples and all(np.isfinite(v) for v in out["scores"].values())


def test_constant_features_are_refused_naming_why():
    y, _ = synthetic()
    with pytest.raises(ValueError, match="every feature is constant"):
        transferability(np.ones((len(y), 4)), y, **SETTINGS)


def test_union_naming_ignores_the_order_teachers_are_listed_in(cfg):
    c = validate_config(_adaptive(cfg, union=True))
    assert union_set(c, ["lite2", "lite1_64"]) == "lite1_lite2"


def test_select_step_records_the_union_it_trains_on(scored):
    from aftbench.selection.scores import select_teacher_sets

    d, paths = scored
    req = {"dataset": "digits", "candidates": ["noise", "rand", "good"], "by": "knn", "top_k": 2, "union": True}
    sets = {"noise": ["noise"], "rand": ["rand"], "good": ["good"], "good_rand": ["rand", "good"]}
    rec = select_teacher_sets(req, list(paths.values()), str(d / "sel_union.json"), sets)
    assert rec["selected"] == ["good", "rand"] and rec["trained"] == ["good", "rand", "good_rand"]


def test_an_adaptive_block_that_could_select_a_set_trained_elsewhere_differently_is_refused(cfg):
    c = _adaptive(cfg)
    c["sweeps"]["pick"].append(
        {
            "datasets": ["fmnist"],
            "students": ["lite0_b2"],
            "methods": ["aft"],
            "teacher_sets": ["lite2"],
            "seeds": [0],
            "train": {"steps": 7},
        }
    )
    with pytest.raises(ConfigError, match=r"teachers~lite2.*two blocks.*\(an adaptive block could select it\)"):
        validate_config(c)
