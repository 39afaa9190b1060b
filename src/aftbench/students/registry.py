"""Student registry: the small models that learn the task (and, under AFT/KD, from teachers).

A student entry in config.yaml names an `arch` from ARCHS plus its arguments (aftbench.students.base
says what every student is). Registering one more arch is one line here.
"""

from __future__ import annotations

from aftbench.core.registry import Registry
from aftbench.data.splits import Split
from aftbench.students.base import Student
from aftbench.students.image import CNN, EffNetLiteStudent, TimmStudent
from aftbench.students.multimodal import ClipTwoTower, PretrainedTwoTower, TwoTower
from aftbench.students.text import GloVeBag, HFSequenceClassifier, MiniLMBag, WordPieceBag

INJECTED_ARGS = ("n_classes", "split")
ARCHS = Registry(
    "student arch",
    {
        "cnn": CNN,
        "effnet_lite": EffNetLiteStudent,
        "timm": TimmStudent,
        "hf_classifier": HFSequenceClassifier,
        "wordpiece_bag": WordPieceBag,
        "glove_bag": GloVeBag,
        "minilm_bag": MiniLMBag,
        "two_tower": TwoTower,
        "pretrained_two_tower": PretrainedTwoTower,
        "clip_two_tower": ClipTwoTower,
    },
    injected=INJECTED_ARGS,
    base=Student,
)


def build_student(spec: dict, split: Split) -> Student:
    cls = ARCHS.entry(spec["arch"])
    needed = {"image": "images", "text": "texts"}
    for part in cls.modality.split("+"):
        if getattr(split.parts["train"], needed[part]) is None:
            raise ValueError(
                f"student arch {spec['arch']!r} needs {needed[part]} but dataset {split.dataset!r} has none"
            )
    injected = {"split": split} if cls.needs_split else {}
    return ARCHS.build(spec["arch"], spec.get("args", {}), n_classes=split.n_classes, **injected)
