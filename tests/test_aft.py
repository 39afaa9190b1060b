"""AFT kernel penalty: the properties docs/method.md lists, plus a hand-checkable value."""

import math

import pytest
import torch

from aftbench.methods.aft import EPS
from aftbench.methods.registry import AFT, build_penalty, kernel_penalty


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rotation_invariance_of_h():
    h, phi, rho = _rand(16, 6), _rand(16, 9, seed=1), torch.rand(9, generator=torch.Generator().manual_seed(2)).double()
    q, _ = torch.linalg.qr(_rand(6, 6, seed=3))
    assert torch.allclose(kernel_penalty(h @ q, phi, rho), kernel_penalty(h, phi, rho), atol=1e-10)


@pytest.mark.parametrize("c", [0.01, 3.0, 250.0])
def test_uniform_rescale_invariance(c):
    h, phi, rho = _rand(16, 6), _rand(16, 9, seed=1), torch.full((9,), 0.3, dtype=torch.float64)
    base = kernel_penalty(h, phi, rho)
    assert torch.allclose(kernel_penalty(c * h, phi, rho), base, atol=1e-8)
    assert torch.allclose(kernel_penalty(h, c * phi, rho), base, atol=1e-8)


def test_zero_when_student_matches_teacher_and_rho_to_one():
    phi = _rand(32, 8)
    r = kernel_penalty(phi.clone(), phi, torch.ones(8, dtype=torch.float64))
    assert r.item() == pytest.approx(math.sqrt(EPS), rel=1e-3)
    # and it is clearly not zero for an unrelated student
    assert kernel_penalty(_rand(32, 8, seed=5), phi, torch.ones(8, dtype=torch.float64)).item() > 0.1


def test_hand_checkable_value():
    # h is already centred; its unit rows give K = [[1, 0, -a], [0, 1, -a], [-a, -a, 1]], a = 1/sqrt2.
    # phi (1-d) is centred; unit rows (the zero row stays zero) give K_rho = [[1,0,-1],[0,0,0],[-1,0,1]].
    # K - K_rho has D22 = 1, D13 = D31 = 1 - a, D23 = D32 = -a, others 0.
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    phi = torch.tensor([[1.0], [0.0], [-1.0]], dtype=torch.float64)
    a = 0.5**0.5
    by_hand = math.sqrt((1 + 2 * (1 - a) ** 2 + 2 * a**2) / 9 + EPS)
    assert kernel_penalty(h, phi, torch.ones(1, dtype=torch.float64)).item() == pytest.approx(by_hand, rel=1e-6)
    # ρ scales the single teacher feature uniformly: no effect on the normalised kernel
    assert kernel_penalty(h, phi, torch.full((1,), 0.2, dtype=torch.float64)).item() == pytest.approx(by_hand, rel=1e-6)


def test_gradients_reach_student_and_rho():
    torch.manual_seed(0)
    student = torch.nn.Linear(5, 4)
    aft = AFT(4, 7)
    x, phi = torch.randn(12, 5), torch.randn(12, 7)
    loss = aft(student(x), phi)
    loss.backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0
    assert aft.s.grad is not None and aft.s.grad.abs().sum() > 0
    # ρ gets its own learning rate in the optimiser
    assert aft.param_groups()[0]["lr"] == 1e-2


def test_rho_is_learned_and_becomes_selective():
    """Teacher with 4 informative features (= student's) and 4 noise features: after fitting,
    ρ of the informative ones exceeds ρ of the noise ones."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, 4, generator=g)
    phi = torch.cat([h, 3.0 * torch.randn(64, 4, generator=g)], dim=1)
    aft = AFT(4, 8, rho_lr=0.1)
    opt = torch.optim.Adam(aft.param_groups())
    for _ in range(300):
        opt.zero_grad()
        aft(h, phi).backward()
        opt.step()
    rho = aft.rho.detach()
    assert rho[:4].min() > rho[4:].max()


def test_fixed_rho_option_keeps_half():
    aft = AFT(3, 5, learn_rho=False)
    assert aft.param_groups() == []
    assert torch.allclose(aft.rho, torch.full((5,), 0.5))


def test_unknown_penalty_names_known_ones():
    with pytest.raises(KeyError, match="known:.*aft"):
        build_penalty("aftt", 2, 2)
