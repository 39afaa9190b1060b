"""The registry summary the workflow uses to check configs without importing torch: equal to
what the registries say, cached, and recomputed when the package changes."""

import json
import subprocess
import sys

from aftbench.sweep import summary as registry


def test_summary_matches_the_registries(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    registry.describe.cache_clear()
    fresh = registry.compute()
    assert registry.describe() == json.loads(json.dumps(fresh))
    from aftbench.students.registry import ARCHS
    from aftbench.teachers.registry import BACKENDS

    assert set(fresh["archs"]) == set(ARCHS) and set(fresh["backends"]) == set(BACKENDS)
    assert fresh["penalties"]["ft"] == "factors" and fresh["penalties"]["aft"] is None
    assert registry.teacher_modality({"backend": "open_clip", "args": {"modality": "text"}}) == "text"
    assert registry.teacher_modality({"backend": "open_clip", "args": {}}) == "image"
    assert registry.teacher_modality({"backend": "hf"}) == "text"
    registry.describe.cache_clear()


def test_cache_is_keyed_on_the_package_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    registry.describe.cache_clear()
    registry.describe()
    [cached] = list((tmp_path / "aftbench").iterdir())
    assert cached == registry._cache_path()
    registry.describe.cache_clear()
    monkeypatch.setattr(registry, "compute", lambda: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert registry.describe()["loaders"]  # served from the cache
    registry.describe.cache_clear()


def test_config_check_does_not_import_torch(tmp_path):
    code = (
        "import sys, yaml; from aftbench.config.check import check_config; from aftbench.core.schema import validate_schema; "
        "c = yaml.safe_load(open('config.yaml')); validate_schema(c); check_config(c); "
        "import aftbench.report.figures, aftbench.launch.launcher, aftbench.sweep.summary; "
        "print('torch' in sys.modules, 'pandas' in sys.modules)"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", "from aftbench.sweep.summary import describe; describe()"], cwd=root, check=True
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
