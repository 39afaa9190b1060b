"""`probe`: a linear classifier on the (concatenated) cached teacher features — the teacher
set's own quality. Inverse regularisation strength C is chosen on the validation split."""

from __future__ import annotations

import time

import numpy as np

from aftbench.core.io import atomic_path
from aftbench.core.records import encode_predictions, run_inputs, write_run_record
from aftbench.core.roles import NO_PENALTY, PROBE
from aftbench.core.schema import defaults
from aftbench.data.splits import SPLITS, load_split
from aftbench.teachers.features import load_features


def class_logits(clf, x: np.ndarray) -> np.ndarray:
    """One logit per class, (n, K) float32, whose softmax is the probe's `predict_proba`. A binary
    logistic regression has one decision value d (class 1 against class 0): its logits are (0, d),
    since softmax((0, d)) = (1 − σ(d), σ(d))."""
    d = clf.decision_function(x)
    if d.ndim == 1:
        d = np.stack([np.zeros_like(d), d], axis=1)
    return d.astype(np.float32)


def probe_run(
    run_id: str,
    dataset: str,
    teacher_set: str,
    teachers: list[str],
    method_id: str,
    method: dict,
    split_path: str,
    feature_paths: list[str],
    out_json: str,
    logits_out: str | None = None,
) -> dict:
    """Fit the probe, write its metrics and (for logit distillation) its logits on every split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    split = load_split(split_path)
    cached = load_features(feature_paths, split.sha256, teachers)
    feats = cached.splits
    y = {s: split.parts[s].labels for s in SPLITS}
    scaler = StandardScaler().fit(feats["train"])
    z = {s: scaler.transform(f) for s, f in feats.items()}
    t0 = time.time()
    scores = []
    settings = {**defaults("probe"), **method}
    for c in settings["C_grid"]:
        clf = LogisticRegression(C=c, max_iter=int(settings["max_iter"])).fit(z["train"], y["train"])
        scores.append((clf.score(z["val"], y["val"]), c, clf))
    val_acc, best_c, clf = max(scores, key=lambda t: t[0])  # first C wins ties: the grid order is the tie-break
    test_pred = clf.predict(z["test"])
    metrics = dict(
        run_id=run_id,
        kind="probe",
        role=PROBE,
        dataset=dataset,
        modality=split.modality,
        student="linear probe",
        student_arch="logistic_regression",
        student_init="teacher features",
        student_params=int(clf.coef_.size + clf.intercept_.size),
        method=method_id,
        penalty=NO_PENALTY,
        teacher_set=teacher_set,
        teachers=teachers,
        beta=0.0,
        seed=0,
        val_acc=float(val_acc),
        test_acc=float((test_pred == y["test"]).mean()),
        checkpoint="C chosen on val",
        train_seconds=round(time.time() - t0, 3),
        C=best_c,
        val_acc_by_C={str(c): float(v) for v, c, _ in scores},
        teachers_pretrained=cached.pretrained,
        **encode_predictions(test_pred, test_pred == y["test"]),
    )
    if logits_out:
        from safetensors.numpy import save_file

        with atomic_path(logits_out) as tmp:
            save_file({s: class_logits(clf, v) for s, v in z.items()}, str(tmp))
    inputs = run_inputs(split_path, split.sha256, feature_paths, cached.digests)
    return write_run_record(out_json, inputs, **metrics)
