"""What a plugin imports to add its own entries to aftbench's registries, without a fork.

    # my_penalty.py, anywhere on PYTHONPATH; config.yaml: `plugins: [my_penalty]`
    from aftbench.plugins import Penalty, declare, register_method

    @register_method("cosine")
    @declare(choices={"reduction": ("mean", "sum")})   # optional: what the signature cannot say
    class Cosine(Penalty):
        def __init__(self, d_h, d_phi, reduction="mean"):
            ...

An entry registered here is the same as a built-in one: its arguments are checked before any job
runs (its signature and `@declare`), `aftbench list` shows it, `cost` prices it, the DAG plans it
and the jobs build it. The base classes say what each kind must provide: `Penalty`
(aftbench.methods.base), `Teacher` (aftbench.teachers.base), `Student` (aftbench.students.base);
a dataset loader is a function returning a `Source` (aftbench.data.sources). docs/plugins.md has
a worked example.
"""

from __future__ import annotations

from aftbench.core.declare import Needs, declare
from aftbench.data.registry import LOADERS
from aftbench.data.sources import Source
from aftbench.methods.base import Penalty
from aftbench.methods.registry import PENALTIES
from aftbench.students.base import Student
from aftbench.students.registry import ARCHS
from aftbench.teachers.base import Teacher
from aftbench.teachers.registry import BACKENDS

register_method = PENALTIES.register  # a transfer method's penalty: config.yaml methods.<id>.penalty
register_teacher = BACKENDS.register  # a teacher backend: config.yaml teachers.<id>.backend
register_student = ARCHS.register  # a student arch: config.yaml students.<id>.arch
register_dataset = LOADERS.register  # a dataset loader: config.yaml datasets.<id>.loader

__all__ = [
    "Needs",
    "Penalty",
    "Source",
    "Student",
    "Teacher",
    "declare",
    "register_dataset",
    "register_method",
    "register_student",
    "register_teacher",
]
