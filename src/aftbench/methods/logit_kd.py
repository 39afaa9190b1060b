"""Logit distillation (Hinton et al. 2015) with the teacher set's linear probe as the teacher:
T² · KL(softmax(teacher/T) ‖ softmax(student/T)). The probe's logits are cached by the probe
step (one file per dataset × teacher set, one column per class, binary tasks included);
training never refits it."""

from __future__ import annotations

import torch.nn.functional as F

from aftbench.methods.base import Penalty


class LogitKD(Penalty):
    target_source = "probe_logits"  # Φ = the probe's logits on the training split
    uses_logits = True  # the penalty compares the student's logits, not its features

    def __init__(self, d_h: int, d_phi: int, temperature: float = 4.0, probe: str = "probe"):
        super().__init__()
        self.t = temperature

    def param_groups(self) -> list[dict]:
        return []

    def forward(self, student_logits, teacher_logits):
        if teacher_logits.shape != student_logits.shape:  # softmax over one column is 1: no signal
            raise ValueError(
                f"logit_kd: the teacher's logits are {tuple(teacher_logits.shape)}, the student's "
                f"{tuple(student_logits.shape)}: one column per class is needed (a probe logits file "
                f"of another split or dataset? delete it and rerun the probe)"
            )
        t = self.t
        return (
            F.kl_div(
                F.log_softmax(student_logits / t, dim=1),
                F.log_softmax(teacher_logits / t, dim=1),
                log_target=True,
                reduction="batchmean",
            )
            * t
            * t
        )
