"""A method's `union_norm`: each teacher of a set balanced on its own training statistics before
the set is concatenated into Φ (teachers of different scales weigh the same), each keeping its
geometry: `per_teacher` (one scale per teacher) and `phi_s` (PHI-S: also rotated to equal
per-column variance); recorded per run; refused where Φ is not the cached features."""

import numpy as np
import pytest
from test_pipeline import tiny_config
from tiny_specs import tiny_spec_dict

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError
from aftbench.teachers.balance import equal_variance_rotation
from aftbench.teachers.features import CachedFeatures
from aftbench.train.loop import RunSpec, train_run


def union(seed=0, n=40):
    rng = np.random.default_rng(seed)
    big = (50 * rng.standard_normal((n, 3)) + 7) * [1, 3, 0.2]  # a teacher of a much larger scale, anisotropic
    small = 0.1 * rng.standard_normal((n, 2)) @ [[1, 0.9], [0, 0.3]]
    splits = {
        s: np.concatenate([big, small], 1)[i::3].astype(np.float32) for i, s in enumerate(("train", "val", "test"))
    }
    return CachedFeatures(splits, [3, 2], [True, True])


def test_each_teacher_weighs_the_same_and_keeps_its_geometry():
    cached = union()
    out, scales = cached.balanced("per_teacher")
    train = out.splits["train"].astype(np.float64)
    for a, b in ((0, 3), (3, 5)):
        block = train[:, a:b]
        assert np.allclose(block.mean(0), 0, atol=1e-5) and np.sqrt((block**2).mean()) == pytest.approx(1, rel=1e-5)
    assert scales[0] > 100 * scales[1]
    raw = cached.splits["val"][:, :3].astype(np.float64)  # val: the train statistics, one scale per teacher
    mu = cached.splits["train"][:, :3].astype(np.float64).mean(0)
    assert np.allclose(out.splits["val"][:, :3], (raw - mu) / scales[0], atol=1e-4)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 50, 64, 384])
def test_the_phi_s_rotation_is_orthogonal_and_spreads_variance_evenly(d):
    lam = np.random.default_rng(d).gamma(0.3, size=d) * np.logspace(0, -6, d)  # PCA-like: a few large
    q = equal_variance_rotation(lam)
    assert np.allclose(q.T @ q, np.eye(d), atol=1e-10)
    assert np.allclose(np.diag(q.T @ np.diag(lam) @ q), lam.mean(), rtol=1e-8, atol=1e-14)


def test_phi_s_gives_every_column_unit_variance_and_keeps_each_teacher_s_geometry():
    cached = union(n=300)
    per, scales = cached.balanced("per_teacher")
    phi, phi_scales = cached.balanced("phi_s")
    assert phi_scales == pytest.approx(scales)  # the same one scale per teacher
    train = phi.splits["train"].astype(np.float64)
    assert np.allclose(train.mean(0), 0, atol=1e-5) and np.allclose(train.var(0), 1, rtol=1e-4)
    assert not np.allclose(per.splits["train"].var(0), 1, rtol=0.1)  # per_teacher alone does not
    for s in ("train", "val", "test"):  # a rotation of per_teacher's block: every distance and angle kept
        for a, b in ((0, 3), (3, 5)):
            x, y = per.splits[s][:, a:b].astype(np.float64), phi.splits[s][:, a:b].astype(np.float64)
            assert np.allclose(x @ x.T, y @ y.T, atol=1e-4)
    with pytest.raises(ValueError, match="union_norm 'whiten'"):
        cached.balanced("whiten")


@pytest.mark.parametrize("mode", ["per_teacher", "phi_s"])
def test_a_run_records_each_teacher_s_scale(tmp_path, digits_split, feats, mode):
    spec = RunSpec.from_dict(tiny_spec_dict("aft_std", "aft", union_norm=mode))
    m = train_run(spec, digits_split, [feats], str(tmp_path / "m.json"))
    rms = m["target_scale"]["union_norm"]["teacher_train_rms"]
    assert set(rms) == {"rp"} and rms["rp"] > 0 and m["target_scale"]["union_norm"]["mode"] == mode
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


def test_the_schema_offers_exactly_the_balances_that_exist():
    from aftbench.core.schema import schema
    from aftbench.teachers.balance import UNION_NORMS

    train = schema()["properties"]["methods"]["additionalProperties"]
    found = [v["properties"]["union_norm"]["enum"] for v in _walk(train) if "union_norm" in v.get("properties", {})]
    assert found == [list(UNION_NORMS)]


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
