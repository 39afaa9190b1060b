"""config.yaml validation: the shipped config is valid; bad input fails naming the culprit."""

import copy
from pathlib import Path

import pytest
import yaml

from aftbench.config.check import check_config
from aftbench.core.layout import noise_null_of, real_set_of
from aftbench.core.schema import ConfigError, validate_schema
from aftbench.sweep.expand import expand_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def check(c):
    validate_schema(c)
    return check_config(c)


def test_shipped_config_is_valid(cfg):
    check(cfg)
    runs = expand_sweep(cfg)
    mods = {cfg["datasets"][r.dataset]["modality"] for r in runs}
    assert mods == {"image", "text", "image+text"}
    assert {r.method for r in runs} >= {"stl", "kd", "aft", "probe"}
    assert len({r.seed for r in runs if r.kind == "train"}) >= 3
    for d in {r.dataset for r in runs}:  # per modality: a pre-trained student, equal grids, a matched noise null
        students = {r.student for r in runs if r.dataset == d and r.kind == "train"}
        assert any(
            cfg["students"][s]["arch"] in ("effnet_lite", "minilm_bag", "pretrained_two_tower") for s in students
        )
        assert len({r.beta for r in runs if r.dataset == d and r.method == "aft"}) >= 2
        sets = {r.teacher_set for r in runs if r.dataset == d and r.method == "aft"}
        real = {ts for ts in sets if real_set_of(ts) is None}
        assert real and {noise_null_of(ts) for ts in real} <= sets
        grids = {m: len({r.beta for r in runs if r.dataset == d and r.method == m}) for m in ("stl", "kd", "aft")}
        assert len(set(grids.values())) == 1, grids  # every arm tunes as many configurations


def test_every_teacher_and_student_in_registries(cfg):
    from aftbench.students.registry import ARCHS
    from aftbench.teachers.registry import BACKENDS

    resolved = check(cfg)  # one-line specs expanded
    assert all(t["backend"] in BACKENDS for t in resolved["teachers"].values())
    assert all(s["arch"] in ARCHS for s in resolved["students"].values())


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda c: c["train"].update(stpes=3), "stpes"),
        (lambda c: c["teachers"]["effnet_lite0"].update(backnd="x"), "backnd"),
        (lambda c: c["datasets"]["fmnist"].update(n_train="many"), r"datasets\.fmnist\.n_train"),
        (lambda c: c["methods"]["aft"].update(beta=-1), r"methods\.aft\.beta: -1 is less than the minimum of 0"),
        (lambda c: c.update(sweep="nope"), "unknown sweep 'nope'"),
        (
            lambda c: c["teacher_sets"]["lite2"].append("effnet_lite9"),
            r"teacher_sets\.lite2: unknown teacher 'effnet_lite9'",
        ),
        (lambda c: c["teachers"].update(bad={"backend": "timmm"}), r"teachers\.bad\.backend: unknown 'timmm'"),
        (lambda c: c["students"].update(bad={"arch": "resnet"}), r"students\.bad\.arch: unknown 'resnet'"),
        (
            lambda c: c["sweeps"]["offline"][0]["students"].append("cnn_xl"),
            r"sweeps\.offline\[0\]\.students: unknown id 'cnn_xl'",
        ),
        (
            lambda c: c["sweeps"]["offline"][0]["teacher_sets"].append("minilm"),
            "teacher 'minilm' .* reads text but dataset 'fmnist' is image",
        ),
        (
            lambda c: c["sweeps"]["offline"][1]["students"].append("cnn_s"),
            "student 'cnn_s' needs image inputs but dataset 'wordnet10' is text",
        ),
        (lambda c: c["teachers"].update({"Bad.Name": {"backend": "glove"}}), "Bad.Name"),
        (lambda c: c["teachers"].update(dino="timm"), r"teachers\.dino"),
        (lambda c: c.update(launcher="slrum"), r"launcher: 'slrum' is not one of"),
        (lambda c: c.update(launch={"resources": {"trian": {}}}), "'trian' was unexpected"),
        (
            lambda c: (
                c["teachers"].update(clip_txt="open_clip:ViT-B-32/laion2b_s34b_b79k:text"),
                c["teacher_sets"]["lite2"].append("clip_txt"),
            ),
            "teacher 'clip_txt' .* reads text but dataset 'fmnist'",
        ),
        (lambda c: c["sweeps"]["offline"][0]["beta"].update(atf=[1]), r"offline\[0\]\.beta: unknown method 'atf'"),
        (
            lambda c: c["sweeps"]["offline"][0]["methods"].append("aft_product"),
            r"'aft_product' \(tensor_product\) needs teacher sets of two or more teachers .* 'lite2' has 1",
        ),
    ],
)
def test_bad_config_names_the_culprit(cfg, mutate, match):
    c = copy.deepcopy(cfg)
    mutate(c)
    with pytest.raises(ConfigError, match=match):
        check(c)


def test_adding_a_teacher_is_one_line(cfg):
    c = copy.deepcopy(cfg)
    c["teachers"]["effnet_lite2_96"] = {"backend": "effnet_lite", "args": {"variant": "lite2", "image_size": 96}}
    c["teacher_sets"]["lite2"].append("effnet_lite2_96")
    check(c)


def test_one_line_teacher_specs_expand(cfg):
    c = copy.deepcopy(cfg)
    c["teachers"].update(
        dino="timm:vit_small_patch14_dinov2.lvd142m",
        t5="hf:google/flan-t5-base#encoder_mean",
        clip_img="open_clip:ViT-L-14/laion2b_s32b_b82k",
    )
    c["teacher_sets"]["lite2"] += ["dino", "clip_img"]
    c["teacher_sets"]["minilm"].append("t5")
    resolved = check(c)
    assert c["teachers"]["dino"] == "timm:vit_small_patch14_dinov2.lvd142m"  # the input is not changed
    assert resolved["teachers"]["dino"] == {"backend": "timm", "args": {"model": "vit_small_patch14_dinov2.lvd142m"}}
    assert resolved["teachers"]["t5"]["args"]["pooling"] == "encoder_mean"
