"""The training protocol's switches (issue #14): the cosine schedule, per-dataset step
multipliers, fitting on train + val (tests/test_refit.py: with a grid), the penalty's own lr and no weight decay on
ρ, and the tensor-product teacher kernel of SNLI-VE."""

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml
from tiny_specs import tiny_spec as spec

from aftbench.config.check import check_config
from aftbench.core.schema import ConfigError, validate_schema
from aftbench.methods.aft import _centred_unit_rows
from aftbench.methods.registry import build_penalty, product_kernel_penalty, product_target_kernel
from aftbench.sweep.expand import expand_sweep
from aftbench.sweep.runs import train_spec
from aftbench.train.loop import TrainConfig, lr_factor, make_optimizer, train_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_cosine_schedule_pins_lr_at_first_middle_and_last_step(tmp_path, digits_split, feats):
    """Every group (the student's and ρ's) follows 0.5 · (1 + cos(π (step − 1) / steps))."""
    m = train_run(
        spec("aft", "aft", train={"schedule": "cosine", "log_every": 1}, args={"rho_lr": 0.1}),
        digits_split,
        [feats],
        str(tmp_path / "m.json"),
    )
    lrs = {h["step"]: h["lr"] for h in m["history"]}
    assert lrs[1] == pytest.approx([0.01, 0.1])
    assert lrs[11] == pytest.approx([0.005, 0.05])  # k = 10 of 20: half way
    last = 0.5 * (1 + math.cos(math.pi * 19 / 20))
    assert lrs[20] == pytest.approx([0.01 * last, 0.1 * last]) and last < 0.01
    student = [lrs[k][0] for k in sorted(lrs)]
    assert all(a > b for a, b in zip(student, student[1:], strict=False))  # strictly decreasing
    const = train_run(spec("aft", "aft", train={"log_every": 1}), digits_split, [feats], str(tmp_path / "c.json"))
    assert {tuple(h["lr"]) for h in const["history"]} == {(0.01, 0.01)}  # ρ's default rho_lr is 0.01
    assert lr_factor("cosine", 4)(0) == 1.0 and lr_factor("cosine", 4)(2) == pytest.approx(0.5)


def test_rho_and_maps_get_no_weight_decay_the_student_does(digits_split):
    from aftbench.data.splits import load_split
    from aftbench.students.registry import build_student

    student = build_student(
        {"arch": "cnn", "args": {"width": 4, "depth": 2, "image_size": 8}}, load_split(digits_split)
    )
    cfg = TrainConfig.resolve({"weight_decay": 0.5})
    for name in ("aft", "kd", "aft_nokernel"):
        opt = make_optimizer(student, build_penalty(name, student.head.in_features, 12, {}, dims=[12]), cfg)
        assert opt.param_groups[0]["weight_decay"] == 0.5
        assert [g["weight_decay"] for g in opt.param_groups[1:]] == [0.0] and len(opt.param_groups) == 2
    # a decayed ρ would shrink towards s = 0 with no gradient at all: with β = 0 it stays put
    pen = build_penalty("aft", student.head.in_features, 12, {}, dims=[12])
    with torch.no_grad():
        pen.s.fill_(2.0)
    opt = make_optimizer(student, pen, cfg)
    pen.s.grad = torch.zeros_like(pen.s)
    opt.step()
    assert torch.all(pen.s == 2.0)


def test_aft_nokernel_map_learns_at_the_penalty_lr():
    pen = build_penalty("aft_nokernel", 8, 12, {})
    opt = make_optimizer(torch.nn.Linear(3, 8), pen, TrainConfig.resolve({"lr": 1e-4}))
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-2]


def test_step_multiplier_changes_only_the_datasets_it_names(cfg):
    c = copy.deepcopy(cfg)
    c["sweeps"]["t"] = [
        {
            "datasets": ["fmnist", "wordnet10"],
            "students": ["cnn_s"],
            "methods": ["stl"],
            "seeds": [0],
            "train": {"steps": 50, "step_multiplier": {"wordnet10": 4}},
        }
    ]
    c["datasets"]["wordnet10"]["modality"] = "image"  # the student check is not what this tests
    runs = {r.dataset: r for r in expand_sweep(c, "t")}
    steps = {d: train_spec(c, r)["train"]["steps"] for d, r in runs.items()}
    assert steps == {"fmnist": 50, "wordnet10": 200}
    assert all("step_multiplier" not in train_spec(c, r)["train"] for r in runs.values())
    assert runs["fmnist"].train_digest != runs["wordnet10"].train_digest
    c["train"]["step_multiplier"] = {"fmnist": 3}  # the block's own multipliers win over the shared ones
    assert train_spec(c, next(r for r in expand_sweep(c, "t") if r.dataset == "fmnist"))["train"]["steps"] == 50
    del c["sweeps"]["t"][0]["train"]["step_multiplier"]
    assert train_spec(c, next(r for r in expand_sweep(c, "t") if r.dataset == "fmnist"))["train"]["steps"] == 150


def test_fit_on_train_and_val_uses_both_and_records_no_val_accuracy(tmp_path, digits_split, feats):
    m = train_run(spec("aft", "aft", train={"fit_on": "train+val"}), digits_split, [feats], str(tmp_path / "m.json"))
    assert m["n_fit"] == 160 and m["val_acc"] is None and m["fit_on"] == "train+val"
    assert train_run(spec("aft", "aft"), digits_split, [feats], str(tmp_path / "t.json"))["n_fit"] == 120


def test_step_multiplier_of_an_unknown_dataset_is_refused(cfg):
    c = copy.deepcopy(cfg)
    validate_schema(c)
    c["sweeps"]["offline"][0]["train"] = {"step_multiplier": {"nope": 2}}
    with pytest.raises(ConfigError, match="step_multiplier names unknown dataset 'nope'"):
        check_config(c)


def test_tensor_product_kernel_is_the_product_of_the_modality_kernels():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    rho = torch.rand(9, generator=g, dtype=torch.float64)
    t = torch.einsum("bi,bj->bij", a * rho[:5], b * rho[5:]).reshape(9, -1)  # the explicit image ⊗ text target
    ka, kb = (a * rho[:5]) @ (a * rho[:5]).T, (b * rho[5:]) @ (b * rho[5:]).T
    assert torch.allclose(t @ t.T, ka * kb)  # the Gram matrix of a tensor product: elementwise product
    phi = torch.cat([a, b], dim=1)
    tn = _centred_unit_rows(t)  # what AFT does to any target: centre over the batch, unit rows
    assert torch.allclose(product_target_kernel(phi, rho, [5, 4]), tn @ tn.T, atol=1e-10)
    h = torch.randn(9, 20, generator=g, dtype=torch.float64)
    hn = _centred_unit_rows(h)
    explicit = torch.sqrt(((hn @ hn.T - tn @ tn.T) ** 2).mean() + 1e-8)
    assert torch.allclose(product_kernel_penalty(h, phi, rho, [5, 4]), explicit)
    pen = build_penalty("aft", 20, 9, {"tensor_product": True}, dims=[5, 4])
    assert torch.allclose(pen(h.float(), phi.float()), product_kernel_penalty(h.float(), phi.float(), pen.rho, [5, 4]))
    with pytest.raises(ValueError, match="needs two or more"):
        build_penalty("aft", 20, 9, {"tensor_product": True}, dims=[9])


def test_fit_on_by_dataset_fits_the_named_datasets_on_train_alone(cfg):
    """The paper sweep: Flowers-102 and DTD on their training split (the reference's split='train'),
    every other dataset's final runs (its refits) on train + val."""
    paper = {
        (r.dataset, train_spec(cfg, r)["train"]["fit_on"])
        for r in expand_sweep(cfg, "paper")
        if r.kind == "train" and (r.grid or r.dataset in ("flowers102", "dtd"))
    }
    assert {fit for d, fit in paper if d in ("flowers102", "dtd")} == {"train"}
    assert {fit for d, fit in paper if d not in ("flowers102", "dtd")} == {"train+val"}
    assert all(
        "fit_on_by_dataset" not in train_spec(cfg, r)["train"]
        for r in expand_sweep(cfg, "paper")[:50]
        if r.kind == "train"
    )
    assert cfg["datasets"]["flowers102"]["n_train"] == 1020 and cfg["datasets"]["dtd"]["n_train"] == 1880
    c = copy.deepcopy(cfg)
    c["sweeps"]["offline"][0]["train"] = {"fit_on_by_dataset": {"nope": "train"}}
    with pytest.raises(ConfigError, match="fit_on_by_dataset names unknown dataset 'nope'"):
        check_config(c)
