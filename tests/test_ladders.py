"""The teacher ladders of config.yaml, on the real default splits: each ladder's linear-probe test
accuracies rise strictly from the weakest teacher set to the strongest, so a "stronger teacher →
better student" comparison has a real x-axis. Uses the Debian data packages and the teacher
wheels that `make setup` installs (about two minutes on one core)."""

from pathlib import Path

import pytest
import yaml

from aftbench.data.splits import make_split
from aftbench.teachers.extract import extract
from aftbench.train.probe import probe_run

# Whole-DAG runs of the tiny sweep: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LADDERS = {  # weak -> strong, as config.yaml's comments and the offline_pretrained sweep state them
    "fmnist": ["lite0_random", "lite0_32", "lite1_64", "lite2"],
    "wordnet10": ["static64", "glove50", "minilm"],
}


@pytest.fixture(scope="module")
def cfg():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_ladders_are_in_the_offline_pretrained_sweep(cfg):
    sets = {d: set() for d in LADDERS}
    for b in cfg["sweeps"]["offline_pretrained"]:
        for d in b["datasets"]:
            if d in sets and "aft" in b["methods"]:
                sets[d] |= set(b["teacher_sets"])
    for d, ladder in LADDERS.items():
        assert set(ladder) <= sets[d], d


@pytest.mark.parametrize("dataset", sorted(LADDERS))
def test_ladder_probe_accuracies_rise_strictly(tmp_path, cfg, dataset):
    npz = tmp_path / f"{dataset}.npz"
    make_split(dataset, cfg["datasets"][dataset], str(npz), str(tmp_path / f"{dataset}.json"))
    accs = []
    for ts in LADDERS[dataset]:
        paths = []
        for t in cfg["teacher_sets"][ts]:
            p = tmp_path / f"{t}.safetensors"
            if not p.exists():
                extract(t, cfg["teachers"][t], str(npz), str(p), str(tmp_path / f"{t}.json"))
            paths.append(str(p))
        m = probe_run(
            ts,
            dataset,
            ts,
            cfg["teacher_sets"][ts],
            "probe",
            cfg["methods"]["probe"],
            str(npz),
            paths,
            str(tmp_path / f"probe_{ts}.json"),
        )
        accs.append(m["test_acc"])
    print(dataset, dict(zip(LADDERS[dataset], accs, strict=True)))
    assert all(a < b for a, b in zip(accs, accs[1:], strict=False)), dict(zip(LADDERS[dataset], accs, strict=True))
