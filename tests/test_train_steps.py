"""The training steps (aftbench.train.steps, .feed, .fast): the loop that never waits for the host
is, on the CPU, the plain step bit for bit; a non-finite loss is still caught, named, and never
reaches a checkpoint; each fast path's default per device."""

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_specs import tiny_spec as spec

from aftbench.data.splits import load_split
from aftbench.methods.registry import build_penalty
from aftbench.students.registry import build_student
from aftbench.teachers.features import load_features
from aftbench.train import fast
from aftbench.train.feed import Feed
from aftbench.train.loop import FitData, penalty_target, start_state, train_run
from aftbench.train.steps import NonFinite, run_steps


def plain_steps(s, state, data, phi):
    """The textbook loop: sample, forward, loss, backward, step, reading the loss every step."""
    cfg, n, bs = s.train, len(data.y_fit), s.train.batch_size
    history = []
    for step in range(1, cfg.steps + 1):
        if state.pos + bs > n:
            state.perm, state.pos = torch.randperm(n, generator=state.sampler), 0
        idx = state.perm[state.pos : state.pos + bs]
        state.pos += bs
        logits, h = state.student({k: v[idx] for k, v in data.x_fit.items()})
        ce = F.cross_entropy(logits, data.y_fit[idx])
        pen = torch.zeros(()) if state.penalty is None else state.penalty(h, phi[idx])
        loss = ce + float(s.method["beta"]) * pen
        assert torch.isfinite(loss)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            history.append((step, ce.item(), pen.item()))
    return history


@pytest.mark.parametrize("method, penalty", [("stl", "none"), ("kd", "kd"), ("aft", "aft")])
def test_the_loop_is_the_plain_step_bit_for_bit_on_the_cpu(tmp_path, digits_split, feats, method, penalty):
    s = spec(method, penalty, train={"steps": 25, "log_every": 5, "checkpoint_every": 0})
    split = load_split(digits_split)
    torch.manual_seed(0)
    student = build_student(s.student, split)
    data = FitData.encode(student, split, "train")
    phi = penalty_target(s, split, data, [feats] if penalty != "none" else [], None).phi
    dims = load_features([feats], split.sha256, ["rp"]).dims if phi is not None else []
    pen = build_penalty(penalty, student.head.in_features, phi.shape[1] if phi is not None else 0, {}, dims=dims)
    twin, twin_pen = copy.deepcopy(student), copy.deepcopy(pen)
    state = start_state(s, student, pen, len(data.y_fit), torch.device("cpu"))
    feed = Feed(data.x_fit, data.y_fit, phi, s.train.batch_size, torch.device("cpu"), resident_gb=16)
    run_steps(s, state, feed, student, str(tmp_path / "ckpt.pt"), "fp")
    reference = start_state(s, twin, twin_pen, len(data.y_fit), torch.device("cpu"))
    history = plain_steps(s, reference, data, phi)
    assert [(h["step"], h["ce"], h["penalty"]) for h in state.history] == history
    for a, b in zip(student.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    if pen is not None:
        for a, b in zip(pen.state_dict().values(), twin_pen.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert feed.resident and state.pos == reference.pos and torch.equal(state.perm, reference.perm)


def test_a_non_finite_loss_is_named_and_never_checkpointed(tmp_path, digits_split, monkeypatch):
    """Read back only every log_every (here 1,000) steps, but before every checkpoint: the run stops
    at the step-5 checkpoint, naming the first step that went non-finite and its term."""
    from aftbench.train.state import TrainState

    saved = []
    monkeypatch.setattr(TrainState, "save", lambda state, *a: saved.append(state.step))
    s = spec("stl", "none", train={"lr": 1e30, "steps": 200, "log_every": 1000, "checkpoint_every": 5})
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step [1-5] .*the cross-entropy went non-finite"):
        train_run(s, digits_split, [], str(tmp_path / "m.json"))
    assert saved == [] and not (tmp_path / "m.json").exists()


def test_non_finite_keeps_the_first_bad_step_and_its_terms():
    watch = NonFinite(torch.device("cpu"), step=10)
    one = torch.tensor(1.0)
    watch.see(one, one, torch.tensor(0.0))
    watch.check(spec("kd", "kd"), 1.0)  # all finite so far
    watch.see(torch.tensor(float("inf")), one, torch.tensor(float("inf")))
    watch.see(torch.tensor(float("nan")), torch.tensor(float("nan")), one)
    with pytest.raises(FloatingPointError, match=r"step 12 \(ce=1, penalty=inf, beta=1.0\): the kd penalty went non"):
        watch.check(spec("kd", "kd"), 1.0)


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update({"tf32": "auto", "channels_last": "auto", "compile": False, **kw})


def test_fast_paths_default_per_device():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert fast.resolve(_Cfg(), cpu, cnn) == {"tf32": False, "channels_last": False, "compile": False}
    assert fast.resolve(_Cfg(), cuda, cnn) == {"tf32": True, "channels_last": True, "compile": False}
    assert fast.resolve(_Cfg(), cuda, mlp)["channels_last"] is False  # nothing to lay out
    assert fast.resolve(_Cfg(tf32=False, channels_last=True), cuda, mlp) == {
        "tf32": False,
        "channels_last": True,
        "compile": False,
    }


def test_a_run_records_its_fast_paths_and_where_its_data_lived(tmp_path, digits_split):
    m = train_run(spec("stl", "none", train={"steps": 4}), digits_split, [], str(tmp_path / "m.json"))
    assert m["fast_paths"] == {"tf32": False, "channels_last": False, "compile": False}
    assert m["inputs_resident_on_device"] is True


@pytest.mark.slow
def test_a_compiled_student_trains_to_the_eager_result(tmp_path, digits_split):
    """`train.compile: true` (torch.compile of the student's forward for the steps; evaluation eager):
    the same run within float tolerance of eager."""
    eager = train_run(spec("stl", "none", train={"steps": 10}), digits_split, [], str(tmp_path / "e.json"))
    compiled = train_run(
        spec("stl", "none", train={"steps": 10, "compile": True}), digits_split, [], str(tmp_path / "c.json")
    )
    assert compiled["fast_paths"]["compile"] is True
    for a, b in zip(eager["history"], compiled["history"], strict=True):
        assert a["ce"] == pytest.approx(b["ce"], rel=1e-4, abs=1e-5)
    assert compiled["test_acc"] == pytest.approx(eager["test_acc"], abs=0.02)
