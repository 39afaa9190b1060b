"""A tiny training run's spec (CNN on the digits split, the `rp` random-projection teacher),
shared by the training, protocol, fault and launcher tests: `tiny_spec_dict` as a job receives
it, `tiny_spec` as the training loop's RunSpec."""

from aftbench.train.loop import RunSpec


def tiny_spec_dict(method, penalty, beta=1.0, train=None, **kw) -> dict:
    return {
        "run_id": f"tiny/{method}",
        "dataset": "digits",
        "student_id": "cnn_t",
        "student": {"arch": "cnn", "args": {"width": 4, "depth": 2, "image_size": 8}},
        "method_id": method,
        "method": {"kind": "train", "penalty": penalty, "beta": beta, **kw},
        "teacher_set": "rp" if penalty != "none" else "none",
        "teachers": ["rp"] if penalty != "none" else [],
        "seed": 0,
        "train": {"steps": 20, "batch_size": 32, "lr": 0.01, "log_every": 10, **(train or {})},
    }


def tiny_spec(method, penalty, beta=1.0, train=None, **kw) -> RunSpec:
    return RunSpec.from_dict(tiny_spec_dict(method, penalty, beta, train, **kw))
