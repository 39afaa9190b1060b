"""Experiment trackers: each finished run's settings, training curves and final metrics, sent to
the tracker config.yaml's `track` names (the `track` rule, after the runs; `snakemake tables`
does not need it). Sent from the verified run records, so a tracker holds exactly what the
tables are built from, and switching `track` later sends the finished runs without retraining.

- tensorboard: one event-file folder per run under results/track/tensorboard/<run id>/
  (`tensorboard --logdir results/track/tensorboard`).
- mlflow: one MLflow run per run (experiment `aftbench/<sweep>`, tag `aftbench_run_id`) in a
  SQLite store results/track/mlflow/mlflow.db, or the server `track_options.mlflow_uri` names.
- wandb: one W&B run per run, offline under results/track/wandb/ unless
  `track_options.wandb_mode: online` (`wandb sync` uploads offline runs later).

A manifest beside the store (results/track/<tracker>/<sweep>.sent.json) records what was sent
for each run id, a digest of its record: a run sent before and unchanged is not sent again; a run whose record changed (it was rerun)
replaces its earlier copy (TensorBoard, MLflow; W&B keeps both, offline runs cannot be deleted).
Nothing here reaches a network unless the user named a server or `online`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from aftbench.core.io import read_json, write_json
from aftbench.core.layout import TRACK_DIR, track_manifest

CURVES = ("ce", "penalty", "rho_mean")
SETTINGS = (
    "dataset",
    "student",
    "student_arch",
    "student_init",
    "method",
    "penalty",
    "teacher_set",
    "beta",
    "seed",
    "steps",
    "batch_size",
    "lr",
    "schedule",
    "fit_on",
    "weight_decay",
    "label_smoothing",
)
FINAL = ("val_acc", "test_acc", "final_ce", "final_penalty", "train_seconds", "student_params")
# What each tracker imports, and the pip line that installs it (`pip install -e .[track]` has the first two).
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow-skinny alembic"),
    "wandb": ("wandb", "wandb"),
}


def missing_tracker(sink: str) -> str | None:
    """The pip line a tracker still needs here, or None."""
    import importlib.util

    module, pip = TRACKERS[sink]
    return None if importlib.util.find_spec(module) is not None else f"pip install {pip}"


def settings(record: dict) -> dict:
    """A run's settings as flat scalars (what a tracker's parameter table takes)."""
    out = {k: record[k] for k in SETTINGS if record.get(k) is not None}
    out["teachers"] = ",".join(record.get("teachers") or []) or "none"
    out["kind"] = record.get("kind", "train")
    return out


def finals(record: dict) -> dict:
    out = {k: float(record[k]) for k in FINAL if isinstance(record.get(k), (int, float))}
    if isinstance(record.get("rho"), dict) and "mean" in record["rho"]:
        out["rho_mean"] = float(record["rho"]["mean"])
    return out


def curve_points(record: dict) -> list[tuple[int, str, float]]:
    """(step, quantity, value) for every logged step (the student's learning rate as `lr`)."""
    points = []
    for h in record.get("history") or []:
        for q in CURVES:
            if h.get(q) is not None:
                points.append((int(h["step"]), q, float(h[q])))
        if h.get("lr"):
            points.append((int(h["step"]), "lr", float(h["lr"][0])))
    return points


class TensorBoard:
    def __init__(self, root: Path, sweep: str, options: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.root, self.writer_cls = root / "tensorboard", SummaryWriter

    def send(self, record: dict) -> None:
        folder = self.root / record["run_id"]
        shutil.rmtree(folder, ignore_errors=True)  # a rerun replaces its earlier curves
        w = self.writer_cls(log_dir=str(folder))
        try:
            for step, q, v in curve_points(record):
                w.add_scalar(f"train/{q}", v, step)
            last = int(record.get("steps") or 0)
            for k, v in finals(record).items():
                w.add_scalar(f"final/{k}", v, last)
            w.add_text("settings", "\n".join(f"    {k}: {v}" for k, v in settings(record).items()))
            w.add_hparams(settings(record), {f"hparam/{k}": v for k, v in finals(record).items()}, run_name=".")
        finally:
            w.close()


class MLflow:
    def __init__(self, root: Path, sweep: str, options: dict):
        from mlflow.tracking import MlflowClient

        uri = options.get("mlflow_uri")
        if not uri:
            (root / "mlflow").mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(root / 'mlflow' / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        name = f"aftbench/{sweep}"
        exp = self.client.get_experiment_by_name(name)
        self.experiment = exp.experiment_id if exp is not None else self.client.create_experiment(name)

    def send(self, record: dict) -> None:
        from mlflow.entities import Metric, Param, RunTag

        for old in self.client.search_runs(
            [self.experiment], filter_string=f"tags.`aftbench_run_id` = '{record['run_id']}'"
        ):
            self.client.delete_run(old.info.run_id)  # a rerun replaces its earlier copy
        run = self.client.create_run(self.experiment, run_name=record["run_id"])
        rid, ts = run.info.run_id, int(time.time() * 1000)
        metrics = [Metric(f"train/{q}", v, ts, step) for step, q, v in curve_points(record)]
        last = int(record.get("steps") or 0)
        metrics += [Metric(k, v, ts, last) for k, v in finals(record).items()]
        params = [Param(k, str(v)) for k, v in settings(record).items()]
        self.client.log_batch(rid, params=params, tags=[RunTag("aftbench_run_id", record["run_id"])])
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(rid, metrics=metrics[i : i + 1000])
        self.client.set_terminated(rid)


class WandB:
    def __init__(self, root: Path, sweep: str, options: dict):
        import wandb

        self.wandb, self.sweep = wandb, sweep
        self.mode = options.get("wandb_mode", "offline")
        self.project = options.get("wandb_project") or f"aftbench-{sweep}"
        self.dir = root / "wandb"
        self.dir.mkdir(parents=True, exist_ok=True)

    def send(self, record: dict) -> None:
        run = self.wandb.init(
            project=self.project,
            name=record["run_id"],
            dir=str(self.dir),
            mode=self.mode,
            config=settings(record),
            tags=[self.sweep],
            reinit="finish_previous",
        )
        try:
            by_step: dict[int, dict] = {}
            for step, q, v in curve_points(record):
                by_step.setdefault(step, {})[f"train/{q}"] = v
            for step in sorted(by_step):
                run.log(by_step[step], step=step)
            run.summary.update(finals(record))
        finally:
            run.finish()


SINKS = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}


def digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def track_runs(metrics_paths: list[str], sink: str, sweep: str, options: dict, out: str) -> dict:
    """Send every run (verified record) not already sent unchanged (the manifest beside the
    store, aftbench.core.layout.track_manifest), updating the manifest every 50 runs and at the
    end, so an interrupted job resends at most 50. Writes the counts to `out`."""
    from aftbench.report.verify import verified_records  # torch: not for the config check's TRACKERS

    records = verified_records(metrics_paths)
    manifest = track_manifest(sink, sweep)
    sent = read_json(manifest).get("runs", {}) if os.path.exists(manifest) else {}
    todo = [r for r in records if sent.get(r["run_id"]) != digest(r)]
    tracker = SINKS[sink](Path(TRACK_DIR), sweep, options) if todo else None
    for i, r in enumerate(todo, 1):
        tracker.send(r)
        sent[r["run_id"]] = digest(r)
        if i % 50 == 0 or i == len(todo):
            write_json(manifest, {"sink": sink, "sweep": sweep, "runs": sent})
    counts = {"sink": sink, "sweep": sweep, "sent": len(todo), "unchanged": len(records) - len(todo)}
    write_json(out, counts)
    return counts
