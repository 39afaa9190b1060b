"""Golden values for the baseline penalties, computed independently with plain loops."""

import itertools

import numpy as np
import pytest
import torch

from aftbench.methods import PENALTIES, build_penalty
from aftbench.methods.rkd import angle_loss, distance_loss


def smooth_l1(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b))
    return float(np.mean(np.where(d < 1, 0.5 * d**2, d - 0.5)))


def ref_distances(x):
    n = len(x)
    d = np.array([[np.linalg.norm(x[i] - x[j]) for j in range(n)] for i in range(n)])
    mean = np.mean([d[i, j] for i in range(n) for j in range(n) if i != j])
    return d / mean


def ref_angles(x):
    n = len(x)
    out = []
    for j, i, k in itertools.product(range(n), repeat=3):
        a, b = x[i] - x[j], x[k] - x[j]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        ea = a / na if na > 0 else a
        eb = b / nb if nb > 0 else b
        out.append(float(ea @ eb))
    return np.array(out)


H = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
PHI = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])


def test_rkd_distance_golden():
    # hand check of the normalisation: H's 12 off-diagonal distances sum to 2*(3+4+5+sqrt2+sqrt5+sqrt10)
    d = ref_distances(H)
    assert d[0, 1] == pytest.approx(3 / ((3 + 4 + 5 + 2**0.5 + 5**0.5 + 10**0.5) / 6))
    expected = smooth_l1(ref_distances(H), ref_distances(PHI))
    got = distance_loss(torch.tensor(H), torch.tensor(PHI)).item()
    assert got == pytest.approx(expected, rel=1e-9)


def test_rkd_angle_golden():
    expected = smooth_l1(ref_angles(H), ref_angles(PHI))
    got = angle_loss(torch.tensor(H), torch.tensor(PHI)).item()
    assert got == pytest.approx(expected, rel=1e-9)


def test_rkd_angle_gradient_is_finite_with_duplicate_points():
    h = torch.tensor(np.vstack([H, H[:1]]), requires_grad=True)  # x_4 == x_0: a zero distance off the diagonal
    angle_loss(h, torch.tensor(np.vstack([PHI, PHI[1:2]]))).backward()
    assert torch.isfinite(h.grad).all()


def test_rkd_is_zero_for_similar_structures_and_scale_free():
    h = torch.tensor(H)
    assert distance_loss(h, 7.0 * h).item() == pytest.approx(0.0, abs=1e-12)
    assert angle_loss(h, 7.0 * h).item() == pytest.approx(0.0, abs=1e-12)
    pen = build_penalty("rkd", 2, 2, {"dist_weight": 1.0, "angle_weight": 2.0})
    assert pen(torch.tensor(H), torch.tensor(PHI)).item() == pytest.approx(
        smooth_l1(ref_distances(H), ref_distances(PHI)) + 2 * smooth_l1(ref_angles(H), ref_angles(PHI)), rel=1e-9)


def test_aft_nokernel_is_centred_mse():
    pen = build_penalty("aft_nokernel", 2, 3)
    with torch.no_grad():
        pen.map.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    h, phi = torch.tensor(H, dtype=torch.float32), torch.tensor(PHI, dtype=torch.float32)
    hc = H - H.mean(0)
    tc = (PHI - PHI.mean(0))[:, :2]
    assert pen(h, phi).item() == pytest.approx(float(((hc - tc) ** 2).mean()), rel=1e-6)
    assert pen(h + 5.0, phi - 2.0).item() == pytest.approx(pen(h, phi).item(), rel=1e-5)  # centring


@pytest.mark.parametrize("name", sorted(n for n in PENALTIES if n != "none"))
def test_every_penalty_has_gradients_and_shrinks_when_fitted(name):
    torch.manual_seed(0)
    pen = build_penalty(name, 6, 10)
    student = torch.nn.Linear(3, 6)
    x = torch.randn(64, 3)
    phi = torch.tanh(x @ torch.randn(3, 10))
    opt = torch.optim.Adam([{"params": list(student.parameters())}, *pen.param_groups()], lr=0.02)
    first = pen(student(x), phi)
    first.backward()
    assert student.weight.grad.abs().sum() > 0
    for _ in range(300):
        opt.zero_grad()
        loss = pen(student(x), phi)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first.item()
