"""Plugins: a transfer method defined outside the package (docs/examples/cosine_penalty.py, copied
to a temp folder on the Python path and named in `plugins:`) is validated, listed, planned,
trained and reported like a built-in one; a plugin that is missing, fails to import or takes a
built-in's name is refused naming it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_pipeline import smk, tiny_config

from aftbench.cli import main
from aftbench.config.check import validate_config
from aftbench.core import plugins
from aftbench.core.schema import ConfigError
from aftbench.data.registry import LOADERS
from aftbench.methods.registry import PENALTIES
from aftbench.students.registry import ARCHS
from aftbench.sweep import summary
from aftbench.teachers.registry import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "cosine_penalty.py"


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """The worked example on the Python path (as PYTHONPATH would put it); afterwards the
    registries, sys.modules and the active plugins are as they were."""
    d = tmp_path / "plugins"
    d.mkdir()
    shutil.copy(EXAMPLE, d / "cosine_penalty.py")
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = {id(r): dict(r) for r in (PENALTIES, BACKENDS, ARCHS, LOADERS)}
    summary.describe.cache_clear()
    yield d
    for r in (PENALTIES, BACKENDS, ARCHS, LOADERS):
        r.clear()
        r.update(before[id(r)])
    for name in [m for m in sys.modules if m.startswith(("cosine_penalty", "broken_plugin"))]:
        del sys.modules[name]
    plugins._imported.clear()
    plugins.activate([])
    summary.describe.cache_clear()


def config_with(text_tsv, names, methods=None) -> dict:
    cfg = tiny_config(text_tsv)
    cfg["plugins"] = names
    cfg["methods"]["cos"] = {"kind": "train", "penalty": "cosine", "beta": [1.0, 4.0], **(methods or {})}
    cfg["sweeps"]["tiny"] = [
        {
            "datasets": ["digits"],
            "students": ["cnn_t"],
            "methods": ["stl", "aft", "cos"],
            "teacher_sets": ["a"],
            "seeds": [0],
        }
    ]
    return cfg


def test_a_plugin_penalty_is_validated_like_a_built_in_one(plugin_dir, text_tsv):
    cfg = validate_config(config_with(text_tsv, ["cosine_penalty"]))
    assert cfg["methods"]["cos"]["penalty"] == "cosine"
    assert summary.describe()["penalty_args"]["cosine"]["choices"] == {"reduction": ["mean", "sum"]}
    with pytest.raises(ConfigError) as err:
        validate_config(config_with(text_tsv, ["cosine_penalty"], {"args": {"reduction": "max", "gamma": 1}}))
    text = str(err.value)
    assert "methods.cos.args.reduction" in text and "'max'" in text and "methods.cos.args.gamma" in text


def test_without_the_plugin_its_penalty_is_unknown(plugin_dir, text_tsv):
    with pytest.raises(ConfigError, match=r"methods.cos.penalty: unknown 'cosine'"):
        validate_config(config_with(text_tsv, []))


def test_a_missing_plugin_is_named_with_the_fix(plugin_dir, text_tsv):
    with pytest.raises(ConfigError, match=r"plugins: no module 'no_such_plugin' on the Python path; put the folder"):
        validate_config(config_with(text_tsv, ["no_such_plugin"]))


def test_a_plugin_that_fails_to_import_is_named_with_its_error(plugin_dir, text_tsv):
    (plugin_dir / "broken_plugin.py").write_text("import numpy\nraise RuntimeError('half-written')\n")
    with pytest.raises(ConfigError, match=r"plugins: importing 'broken_plugin' failed: RuntimeError: half-written"):
        validate_config(config_with(text_tsv, ["broken_plugin"]))


def test_a_plugin_cannot_take_a_built_in_name_or_a_bad_id(plugin_dir):
    from aftbench.plugins import Penalty, register_method, register_student

    class Mine(Penalty):
        pass

    with pytest.raises(ValueError, match=r"penalty 'aft' .*Mine\): the name is taken by aftbench.methods.aft.AFT"):
        register_method("aft")(Mine)
    with pytest.raises(ValueError, match=r"lower-case letters, digits and underscores"):
        register_method("My-Pen")(Mine)
    with pytest.raises(TypeError, match=r"must be a subclass of aftbench.students.base.Student"):
        register_student("mine")(Mine)
    assert "aft" in PENALTIES and PENALTIES["aft"].__name__ == "AFT"


def test_an_edited_plugin_recomputes_the_registry_summary(plugin_dir):
    plugins.activate(["cosine_penalty"])
    first = summary._cache_path()
    src = plugin_dir / "cosine_penalty.py"
    src.write_text(src.read_text() + "\n# edited\n")
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert summary._cache_path() != first


def test_list_shows_the_config_s_plugin(plugin_dir, text_tsv, tmp_path, capsys):
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump(config_with(text_tsv, ["cosine_penalty"])))
    assert main(["list", "methods", "--configfile", str(cfgfile)]) == 0
    out = capsys.readouterr().out
    assert "\n  cosine [plugin cosine_penalty]: 1 − cos(W h, φ) per example" in out
    assert "reduction: str = 'mean', one of ['mean', 'sum']" in out


@pytest.mark.slow
def test_a_plugin_method_is_planned_trained_and_reported(tmp_path, text_tsv):
    d = tmp_path / "plugins"
    d.mkdir()
    shutil.copy(EXAMPLE, d / "cosine_penalty.py")
    wd = tmp_path / "sweep"
    wd.mkdir()
    (wd / "tiny.yaml").write_text(yaml.safe_dump(config_with(text_tsv, ["cosine_penalty"]), sort_keys=False))
    env_path = os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path  # smk passes the environment on: Snakemake and every job see it
    try:
        smk(wd)
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.__setitem__("PYTHONPATH", old)
    runs = pd.read_csv(wd / "results" / "reports" / "tiny" / "runs.csv")
    cos = runs[runs["method"] == "cos"]
    assert len(cos) == 2 and cos["test_acc"].notna().all()  # β ∈ {1, 4}, one seed
    [metrics] = [
        json.loads(p.read_text()) for p in (wd / "results" / "runs").rglob("metrics.json") if "method~cos/" in str(p)
    ][:1]
    assert metrics["penalty"] == "cosine" and metrics["role"] == "transfer"
    table = pd.read_csv(wd / "results" / "reports" / "tiny" / "tables" / "main.csv")
    assert any("cos" in c for c in table.columns), list(table.columns)
    listed = subprocess.run(
        [sys.executable, "-m", "aftbench", "list", "methods", "--configfile", str(wd / "tiny.yaml")],
        cwd=wd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    assert "cosine [plugin cosine_penalty]" in listed.stdout, listed.stderr


def test_a_job_command_line_imports_its_plugins_before_a_pack_forks(plugin_dir):
    """A packed job preloads what its runs need, the plugins of `--plugins` included."""
    from aftbench.cli import Command

    assert "cosine" not in PENALTIES
    Command().preload(["--plugins", "cosine_penalty", "probe", "--spec", "{}"])
    assert PENALTIES["cosine"].__module__ == "cosine_penalty"
