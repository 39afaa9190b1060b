"""A method's `union_norm: per_teacher`: each teacher of a set standardised on its own training
statistics before the set is concatenated into Φ (teachers of different scales weigh the same),
each keeping its geometry; recorded per run; refused where Φ is not the cached features."""

import numpy as np
import pytest
from test_pipeline import tiny_config
from tiny_specs import tiny_spec_dict

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError
from aftbench.teachers.features import CachedFeatures
from aftbench.train.loop import RunSpec, train_run


def union(seed=0):
    rng = np.random.default_rng(seed)
    big = 50 * rng.standard_normal((40, 3)) + 7  # a teacher of a much larger scale than the other
    small = 0.1 * rng.standard_normal((40, 2))
    splits = {
        s: np.concatenate([big, small], 1)[i::3].astype(np.float32) for i, s in enumerate(("train", "val", "test"))
    }
    return CachedFeatures(splits, [3, 2], [True, True])


def test_each_teacher_weighs_the_same_and_keeps_its_geometry():
    cached = union()
    out, scales = cached.standardised()
    train = out.splits["train"].astype(np.float64)
    for a, b in ((0, 3), (3, 5)):
        block = train[:, a:b]
        assert np.allclose(block.mean(0), 0, atol=1e-5) and np.sqrt((block**2).mean()) == pytest.approx(1, rel=1e-5)
    assert scales[0] > 100 * scales[1]
    raw = cached.splits["val"][:, :3].astype(np.float64)  # val: the train statistics, one scale per teacher
    mu = cached.splits["train"][:, :3].astype(np.float64).mean(0)
    assert np.allclose(out.splits["val"][:, :3], (raw - mu) / scales[0], atol=1e-4)


def test_a_run_records_each_teacher_s_scale(tmp_path, digits_split, feats):
    spec = RunSpec.from_dict(tiny_spec_dict("aft_std", "aft", union_norm="per_teacher"))
    m = train_run(spec, digits_split, [feats], str(tmp_path / "m.json"))
    rms = m["target_scale"]["union_norm"]["teacher_train_rms"]
    assert set(rms) == {"rp"} and rms["rp"] > 0 and m["target_scale"]["union_norm"]["mode"] == "per_teacher"
    plain = train_run(RunSpec.from_dict(tiny_spec_dict("aft", "aft")), digits_split, [feats], str(tmp_path / "p.json"))
    assert "union_norm" not in plain["target_scale"]


def test_union_norm_is_refused_where_phi_is_not_the_cached_features(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["methods"]["ft"]["union_norm"] = "per_teacher"
    with pytest.raises(ConfigError, match=r"methods.ft.union_norm: penalty 'ft' does not read the cached teacher"):
        validate_config(cfg)
    cfg = tiny_config(text_tsv)
    cfg["methods"]["aft"]["union_norm"] = "per_teacher"
    validate_config(cfg)
