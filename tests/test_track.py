"""Experiment trackers (config.yaml `track`): each run's settings, curves and final metrics reach
TensorBoard event files and an MLflow store that their own readers load back; an unchanged run
is not sent twice, a rerun replaces its earlier copy; a tracker that is not installed is refused
before any job; a tiny sweep sends its runs, and switching `track` sends them again without
retraining."""

import json
import os

import pytest
import yaml
from fake_runs import write_run
from test_pipeline import smk, tiny_config

from aftbench.config.check import validate_config
from aftbench.core.layout import TRACK_DIR
from aftbench.core.schema import ConfigError
from aftbench.report import track
from aftbench.report.track import track_runs

RUN_ID = "dataset~d/student~s/method~aft/teachers~ts/beta~1/seed~0"
HISTORY = [
    {"step": 1, "ce": 2.0, "penalty": 0.5, "lr": [0.01, 0.01], "rho_mean": 0.4},
    {"step": 10, "ce": 1.0, "penalty": 0.25, "lr": [0.005, 0.01], "rho_mean": 0.6},
]


def records(tmp_path, test_acc=0.5):
    tmp_path.mkdir(exist_ok=True)
    return [
        write_run(tmp_path, 0, run_id=RUN_ID, kind="train", history=HISTORY, steps=10, lr=0.01, test_acc=test_acc),
        write_run(tmp_path, 1, run_id="dataset~d/student~s/method~stl/teachers~none/beta~0/seed~0", method="stl"),
    ]


def tb_scalars(folder) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_event_files_hold_each_run_s_curves_and_finals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = records(tmp_path / "runs")
    assert track_runs(paths, "tensorboard", "s", {}, "done.json")["sent"] == 2
    got = tb_scalars(f"{TRACK_DIR}/tensorboard/{RUN_ID}")
    assert got["train/ce"] == [(1, 2.0), (10, 1.0)] and got["train/penalty"] == [(1, 0.5), (10, 0.25)]
    assert got["train/rho_mean"] == [(1, 0.4), (10, 0.6)] and got["train/lr"] == [(1, 0.01), (10, 0.005)]
    assert got["final/test_acc"] == [(10, 0.5)] and got["final/val_acc"] == [(10, 0.5)]
    assert track_runs(paths, "tensorboard", "s", {}, "done.json") == {
        "sink": "tensorboard",
        "sweep": "s",
        "sent": 0,
        "unchanged": 2,
    }
    paths = records(tmp_path / "runs", test_acc=0.75)  # the run was redone: its copy is replaced
    assert track_runs(paths, "tensorboard", "s", {}, "done.json")["sent"] == 1
    assert tb_scalars(f"{TRACK_DIR}/tensorboard/{RUN_ID}")["final/test_acc"] == [(10, 0.75)]


def test_an_mlflow_store_holds_each_run_once_with_params_and_curves(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    paths = records(tmp_path / "runs")
    track_runs(paths, "mlflow", "s", {}, "done.json")
    records(tmp_path / "runs", test_acc=0.75)
    assert track_runs(paths, "mlflow", "s", {}, "done.json")["sent"] == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/{TRACK_DIR}/mlflow/mlflow.db")
    exp = client.get_experiment_by_name("aftbench/s")
    [run] = client.search_runs([exp.experiment_id], filter_string=f"tags.`aftbench_run_id` = '{RUN_ID}'")
    assert run.data.params["method"] == "aft" and run.data.params["teachers"] == "t"
    assert run.data.metrics["test_acc"] == 0.75
    ce = client.get_metric_history(run.info.run_id, "train/ce")
    assert [(m.step, m.value) for m in ce] == [(1, 2.0), (10, 1.0)]
    assert len(client.search_runs([exp.experiment_id])) == 2


def test_wandb_offline_runs_are_written_without_a_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_SILENT", "true")
    track_runs(records(tmp_path / "runs"), "wandb", "s", {}, "done.json")
    assert list((tmp_path / TRACK_DIR / "wandb" / "wandb").glob("offline-run-*"))


def test_a_tracker_that_is_not_installed_is_refused_before_any_job(text_tsv, monkeypatch):
    monkeypatch.setitem(track.TRACKERS, "mlflow", ("no_such_tracker_module", "mlflow-skinny alembic"))
    cfg = {**tiny_config(text_tsv), "track": "mlflow"}
    with pytest.raises(ConfigError, match=r"track: 'mlflow' is not installed here; pip install mlflow-skinny alembic"):
        validate_config(cfg)


@pytest.mark.slow
def test_a_tiny_sweep_is_tracked_and_switching_the_tracker_retrains_nothing(tmp_path, text_tsv):
    pytest.importorskip("mlflow")
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["tiny"] = [cfg["sweeps"]["tiny"][0] | {"methods": ["stl", "aft"], "seeds": [0]}]
    cfg["track"] = "tensorboard"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    smk(tmp_path)
    done = json.loads((tmp_path / TRACK_DIR / "tensorboard" / "tiny.done.json").read_text())
    assert done["sent"] == 3 and done["unchanged"] == 0  # stl + aft at β 0.5 and 2
    aft = [p for p in (tmp_path / TRACK_DIR / "tensorboard").rglob("events.out.tfevents.*") if "method~aft/" in str(p)]
    assert aft
    scalars = tb_scalars(aft[0].parent)
    assert [s for s, _ in scalars["train/ce"]] == [5, 10] and "train/rho_mean" in scalars

    cfg["track"] = "mlflow"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = smk(tmp_path).stderr
    assert "rule track:" in out and "rule train:" not in out  # the finished runs are sent, none retrained
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/{TRACK_DIR}/mlflow/mlflow.db")
    exp = client.get_experiment_by_name("aftbench/tiny")
    assert len(client.search_runs([exp.experiment_id])) == 3
    assert os.path.exists(tmp_path / TRACK_DIR / "mlflow" / "tiny.done.json")
