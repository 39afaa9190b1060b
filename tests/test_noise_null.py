"""The matched noise null (a block's `noise_null: true`): which runs it adds, the features it
trains on, and the knowledge-specific gain the report computes from it."""

import numpy as np
import pandas as pd
import pytest
from fake_runs import runs_frame
from test_pipeline import tiny_config
from tiny_specs import tiny_spec_dict

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError
from aftbench.data.splits import load_split
from aftbench.report.knowledge import knowledge_table, write_knowledge
from aftbench.sweep.expand import expand_sweep, planned_bound
from aftbench.sweep.runs import train_spec
from aftbench.teachers.features import load_features
from aftbench.train.loop import RunSpec, train_run


@pytest.fixture
def nulled(text_tsv):
    cfg = tiny_config(text_tsv)
    for block in cfg["sweeps"]["tiny"]:
        block["noise_null"] = True
    return validate_config(cfg)


def test_a_null_block_adds_the_feature_methods_runs_on_noise_of_each_set(nulled):
    plain = {
        r.run_id for r in expand_sweep(validate_config(tiny_config(nulled["datasets"]["tinytext"]["args"]["path"])))
    }
    runs = expand_sweep(nulled)
    added = [r for r in runs if r.run_id not in plain]
    # digits: kd (1 β) + aft (2 β) on noise_of_a × 2 seeds; tinytext: aft (2 β) on noise_of_t × 1 seed;
    # never STL, probes, FT (paraphraser factors) or logit_kd (probe logits): their Φ is no feature cache
    assert sorted((r.dataset, r.method, r.teacher_set) for r in added) == sorted(
        [("digits", "kd", "noise_of_a")] * 2
        + [("digits", "aft", "noise_of_a")] * 4
        + [("tinytext", "aft", "noise_of_t")] * 2
    )
    assert planned_bound(nulled) == len(runs)
    spec = train_spec(nulled, added[0])
    assert spec["noise_null"] is True and spec["teachers"] == nulled["teacher_sets"][added[0].teacher_set[9:]]
    assert all("noise_null" not in train_spec(nulled, r) for r in runs if r.run_id in plain)  # their params unchanged


def test_a_teacher_set_named_like_a_null_is_refused(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["teacher_sets"]["noise_of_x"] = ["rp_a"]
    with pytest.raises(ConfigError, match=r"teacher_sets.noise_of_x: ids starting 'noise_of_'"):
        validate_config(cfg)


def test_the_null_is_seeded_noise_of_the_sets_width_and_storage_dtype(feats, digits_split):
    real = load_features([feats], load_split(digits_split).sha256, ["rp"])
    real.dtypes = ["float16"]  # as a float16 cache would be
    a, b = real.noise_null("noise_of_rp"), real.noise_null("noise_of_rp")
    for s in real.splits:
        assert a.splits[s].shape == real.splits[s].shape and a.splits[s].dtype == np.float32
        np.testing.assert_array_equal(a.splits[s], b.splits[s])  # fixed per example
        np.testing.assert_array_equal(a.splits[s], a.splits[s].astype(np.float16))  # rounded as stored
    z = np.concatenate(list(a.splits.values()))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05 and a.pretrained == [False]
    other = real.noise_null("noise_of_other").splits["train"]
    assert not np.array_equal(other, a.splits["train"])


def test_a_null_run_trains_on_noise_and_says_so(tmp_path, digits_split, feats):
    d = {**tiny_spec_dict("aft", "aft"), "teacher_set": "noise_of_rp", "noise_null": True}
    m = train_run(RunSpec.from_dict(d), digits_split, [feats], str(tmp_path / "m.json"))
    assert m["noise_null"] is True and m["teachers_pretrained"] == [False]
    real = train_run(RunSpec.from_dict(tiny_spec_dict("aft", "aft")), digits_split, [feats], str(tmp_path / "r.json"))
    assert "noise_null" not in real and real["final_penalty"] != m["final_penalty"]


def fake_runs(effect: float) -> pd.DataFrame:
    """STL, AFT on set `a` and on its null, 5 seeds: set − null = `effect` on every seed."""
    rng = np.random.default_rng(0)
    records = []
    for seed in range(5):
        base = 0.7 + 0.01 * rng.standard_normal()
        for method, ts, acc in [
            ("stl", "none", base),
            ("aft", "a", base + 0.03 + effect),
            ("aft", "noise_of_a", base + 0.03),
        ]:
            records.append(dict(method=method, teacher_set=ts, seed=seed, test_acc=acc))
    return runs_frame(records)


def test_the_knowledge_gain_is_set_minus_null_on_the_same_seeds(tmp_path):
    t = knowledge_table(fake_runs(0.02)).iloc[0]
    assert (t.method, t.teacher_set, t.n_seeds) == ("aft", "a", 5)
    assert t.knowledge_gain == pytest.approx(2.0) and t.knowledge_gain_lo == pytest.approx(2.0)
    assert t.gain_with_null == pytest.approx(3.0) and t.gain_with_set == pytest.approx(5.0)
    none = knowledge_table(fake_runs(0.0)).iloc[0]
    assert none.knowledge_gain == pytest.approx(0.0, abs=1e-9)
    write_knowledge(fake_runs(0.02), tmp_path)
    figure = (tmp_path / "figures" / "knowledge_gain.png").read_bytes()
    md = (tmp_path / "tables" / "knowledge_gain.md").read_text()
    assert (
        "| aft      | a             | 5   | +2.00 [+2.00, +2.00]  | +5.00 [+5.00, +5.00] | +3.00 [+3.00, +3.00]" in md
    )
    write_knowledge(fake_runs(0.02)[lambda r: ~r.teacher_set.str.startswith("noise_of_")], tmp_path)
    assert "No noise-null runs in this sweep" in (tmp_path / "tables" / "knowledge_gain.md").read_text()
    assert (tmp_path / "figures" / "knowledge_gain.png").read_bytes() != figure  # the placeholder


def test_a_stronger_teacher_is_tested_on_the_knowledge_gain_too():
    """Claim 2 on the knowledge-specific gain: a ladder of four sets (probe 0.6 / 0.7 / 0.8 / 0.9),
    each with its null. AFT's accuracy rises 0.2 per probe point, its null's 0.1 (noise that
    tracks the set's strength: a regulariser's share), so its knowledge gain rises 0.1 per point;
    KD's set and null are equal, so its gain's slope is 0. The slope's unit is the teacher set
    (4 sets, one student: 2 residual df)."""
    from aftbench.report.claims import claims_table

    rng = np.random.default_rng(1)
    ladder = [("a", 0.6), ("b", 0.7), ("c", 0.8), ("d", 0.9)]
    records = []
    for seed in range(5):
        base = 0.7 + 0.01 * rng.standard_normal()
        records.append(dict(method="stl", teacher_set="none", teachers="none", seed=seed, test_acc=base))
        for ts, p in ladder:
            x = p - 0.75
            records += [
                dict(
                    method="aft",
                    teacher_set=ts,
                    seed=seed,
                    test_acc=base + 0.03 + 0.2 * x + 0.001 * rng.standard_normal(),
                ),
                dict(method="aft", teacher_set=f"noise_of_{ts}", seed=seed, test_acc=base + 0.03 + 0.1 * x),
                dict(method="kd", teacher_set=ts, seed=seed, test_acc=base + 0.01),
                dict(method="kd", teacher_set=f"noise_of_{ts}", seed=seed, test_acc=base + 0.01),
            ]
    for ts, p in ladder:
        records.append(dict(method="probe", role="probe", student="probe", teacher_set=ts, seed=0, test_acc=p))
    for r in records:
        r.setdefault("teachers", r["teacher_set"].removeprefix("noise_of_"))

    def table(recs):
        runs = runs_frame(recs).assign(rho_by_teacher=None, modality="image")
        return runs.assign(control_teacher=runs.teacher_set.str.startswith("noise_of_")).pipe(claims_table)

    rows = table(records)
    rows = rows[rows.claim.str.startswith("2.")]
    slope = rows[rows.statistic.str.startswith("slope of")].set_index("scope").estimate
    assert slope["AFT"] == pytest.approx(0.2, abs=0.01) and slope["AFT · knowledge gain"] == pytest.approx(
        0.1, abs=0.01
    )
    assert slope["KD · knowledge gain"] == pytest.approx(0.0, abs=1e-9)
    assert rows.set_index("scope").verdict["AFT · knowledge gain"] == "supported"
    # without nulls the gain version says what it needs
    rows = table([r for r in records if not r["teacher_set"].startswith("noise_of_")])
    assert "needs teacher sets with noise nulls" in rows[rows.scope == "knowledge-specific gain"].statistic.iloc[0]
