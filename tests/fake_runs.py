"""Hand-made run records (metrics.json files) for the report, table and claims tests."""

import json

import numpy as np
import pandas as pd

from aftbench.core.records import sign_record
from aftbench.core.roles import method_role


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """A runs table as aftbench.report.build.collect_runs makes it, from records giving at least
    method, teacher_set, seed and test_acc: STL is the baseline at β 0, any other method a
    transfer method at β 1 whose penalty is its id; val_acc = test_acc; β selected."""
    from aftbench.report.build import select_beta

    rows = []
    for r in records:
        stl = r["method"] == "stl"
        row = {"dataset": "d", "student": "s", "val_acc": r["test_acc"], "diverged": False, **r}
        row.setdefault("role", "baseline" if stl else "transfer")
        row.setdefault("penalty", None if stl else r["method"])
        row.setdefault("beta", 0.0 if stl else 1.0)
        rows.append(row)
    runs = pd.DataFrame(rows)
    return runs.assign(selected=select_beta(runs))


def write_run(tmp_path, i, **kw):
    m = {
        "dataset": "d",
        "modality": "image",
        "student": "s",
        "student_init": "scratch",
        "student_params": 10,
        "method": "aft",
        "teachers": ["t"],
        "teacher_set": "ts",
        "beta": 1.0,
        "seed": 0,
        "val_acc": 0.5,
        "test_acc": 0.5,
        "train_seconds": 1.0,
        "final_ce": 1.0,
        "final_penalty": 0.1,
        "run_id": f"r{i}",
        "teachers_pretrained": [True],
    }
    m.update(kw)
    m.setdefault("penalty", "none" if m["method"] == "stl" else m["method"])
    m.setdefault("role", method_role({"kind": "train", "penalty": m["penalty"]}))  # every record has one
    p = tmp_path / f"{i}.json"
    p.write_text(json.dumps(sign_record(m)))  # signed as a run signs its record
    return str(p)


def fake_sweep(
    tmp_path, effects: dict, n_seeds=5, noise=0.01, cells=(("d1", "image"), ("d2", "text")), sets=None, seed=0
):
    """Runs of STL and every method in `effects` (method -> mean accuracy gain over STL, or a
    function of the teacher set's probe accuracy) on every (dataset, teacher set) cell, plus a
    probe per teacher set. `sets`: teacher set -> (teachers, probe accuracy, pretrained flags)."""
    rng = np.random.default_rng(seed)
    tmp_path.mkdir(parents=True, exist_ok=True)
    sets = sets or {"ts1": (["t1"], 0.9, [True]), "ts2": (["t2"], 0.85, [True])}
    paths = []

    def add(ds, modality, **kw):
        paths.append(write_run(tmp_path, len(paths), dataset=ds, modality=modality, **kw))

    for ds, modality in cells:
        stl = 0.7 + rng.normal(0, noise, n_seeds)
        for s in range(n_seeds):
            add(
                ds,
                modality,
                method="stl",
                teachers=[],
                teacher_set="none",
                beta=0.0,
                seed=s,
                test_acc=float(stl[s]),
                val_acc=float(stl[s]),
            )
        for ts, (teachers, probe, pretrained) in sets.items():
            add(
                ds,
                modality,
                method="probe",
                penalty="none",
                role="probe",
                student="probe",
                teachers=teachers,
                teacher_set=ts,
                beta=0.0,
                test_acc=probe,
                val_acc=probe,
                teachers_pretrained=pretrained,
            )
            for m, gain in effects.items():
                acc = stl + (gain(probe) if callable(gain) else gain) + rng.normal(0, noise, n_seeds)
                for s in range(n_seeds):
                    add(
                        ds,
                        modality,
                        method=m,
                        teachers=teachers,
                        teacher_set=ts,
                        seed=s,
                        test_acc=float(acc[s]),
                        val_acc=float(acc[s]),
                        teachers_pretrained=pretrained,
                        role="transfer",
                    )
    return paths
