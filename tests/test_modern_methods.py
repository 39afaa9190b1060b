"""The 2024–25 feature-distillation baselines (RCKA, CosPress, VkD): each one's defining property
and a parity test against a direct formula on fixed inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aftbench.methods.cospress import TAUS, CosPress, neighbour_distribution, sne_kl
from aftbench.methods.rcka import RCKA, cka
from aftbench.methods.registry import build_penalty
from aftbench.methods.vkd import VkD


def orthonormal_rows(d: int, d2: int, seed: int = 0) -> torch.Tensor:
    """Q (d × d2), d ≤ d2, with Q Qᵀ = I: x ↦ x Q keeps every inner product."""
    q, _ = torch.linalg.qr(torch.randn(d2, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.T


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 6, generator=g, dtype=torch.float64), torch.randn(32, 9, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------- RCKA
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("l2_norm", [False, True])
def test_cka_is_one_for_features_equal_up_to_rotation_and_isotropic_scale(xy, center, l2_norm):
    x, _ = xy
    y = 3.7 * x @ orthonormal_rows(6, 11)  # another width, rotated, scaled
    assert cka(x, y, center, l2_norm).item() == pytest.approx(1.0, abs=1e-12)
    assert build_penalty("rcka", 11, 6, {"center": center, "l2_norm": l2_norm})(y, x).item() == pytest.approx(
        0.0, abs=1e-12
    )


def test_cka_matches_the_textbook_formulas(xy):
    x, y = (t.numpy() for t in xy)

    def linear_cka(a, b):  # ‖bᵀa‖²_F / (‖aᵀa‖_F ‖bᵀb‖_F)
        return np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))

    assert cka(*xy, center=False, l2_norm=False).item() == pytest.approx(linear_cka(x, y), rel=1e-12)
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert cka(*xy, center=True, l2_norm=False).item() == pytest.approx(linear_cka(xc, yc), rel=1e-12)
    kx, ky = x @ x.T, y @ y.T  # the authors' row normalisation, written out
    kx, ky = kx / np.sqrt(np.diag(kx))[:, None], ky / np.sqrt(np.diag(ky))[:, None]
    ref = (kx * ky).sum() / (np.linalg.norm(kx) * np.linalg.norm(ky))
    assert cka(*xy).item() == pytest.approx(ref, rel=1e-12)


def test_only_centred_cka_ignores_a_shift_of_the_features(xy):
    x, y = xy
    shifted = x + torch.linspace(1, 6, 6, dtype=torch.float64)
    assert cka(shifted, y, center=True).item() == pytest.approx(cka(x, y, center=True).item(), rel=1e-12)
    assert abs(cka(shifted, y).item() - cka(x, y).item()) > 1e-3  # the authors' uncentred default does not


def test_rcka_learns_nothing_of_its_own():
    assert list(RCKA(4, 7).parameters()) == []


# ----------------------------------------------------------------------------- VkD
@pytest.mark.parametrize("d_h, d_phi", [(4, 7), (7, 4), (5, 5)])
def test_vkd_map_stays_orthogonal_while_it_trains(d_h, d_phi):
    torch.manual_seed(0)
    pen = VkD(d_h, d_phi)
    h, phi = torch.randn(64, d_h, requires_grad=True), torch.randn(64, d_phi) * 5 + 2
    opt = torch.optim.Adam(pen.param_groups(), lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        pen(h, phi).backward()
        opt.step()
    w = pen.proj.weight.detach()  # (d_phi, d_h)
    gram = w.T @ w if d_phi >= d_h else w @ w.T
    assert torch.allclose(gram, torch.eye(min(d_h, d_phi)), atol=1e-5)
    if d_phi >= d_h:  # orthonormal columns: the map keeps the student's norms
        assert torch.allclose((h @ w.T).norm(dim=1), h.norm(dim=1), rtol=1e-5)


def test_vkd_is_smooth_l1_to_the_layer_normalised_teacher():
    torch.manual_seed(1)
    pen = VkD(3, 5)
    h, phi = torch.randn(16, 3), torch.randn(16, 5) * 4 - 1
    p = (h @ pen.proj.weight.T).detach().numpy().astype(np.float64)
    t = phi.numpy().astype(np.float64)
    t = (t - t.mean(1, keepdims=True)) / np.sqrt(t.var(1, keepdims=True) + 1e-5)
    d = np.abs(p - t)
    huber = np.where(d < 1, 0.5 * d**2, d - 0.5).mean()
    assert pen(h, phi).item() == pytest.approx(huber, rel=1e-5)


# ----------------------------------------------------------------------------- CosPress
def test_cospress_kl_is_zero_when_the_compression_keeps_every_cosine(xy):
    _, phi = xy
    kept = (phi * torch.linspace(0.5, 3, 32, dtype=torch.float64)[:, None]) @ orthonormal_rows(9, 12)
    assert sne_kl(phi, kept).item() == pytest.approx(0.0, abs=1e-12)  # rows rescaled and rotated: same angles
    assert sne_kl(phi, phi[:, :4]).item() > 1e-3


def test_neighbour_distributions_are_symmetric_and_sum_to_one(xy):
    p = neighbour_distribution(xy[1], 0.05)
    assert p.sum().item() == pytest.approx(1.0, rel=1e-12) and torch.allclose(p, p.T) and p.diagonal().max() == 0
    assert torch.isfinite(p).all()


def test_cospress_kl_matches_a_direct_formula(xy):
    a, b = (t.numpy() for t in xy)

    def dist(x, tau):
        z = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = z @ z.T / tau
        np.fill_diagonal(d, -np.inf)
        e = np.exp(d - d.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        p = p + p.T
        return p / p.sum()

    off = ~np.eye(32, dtype=bool)
    ref = np.mean([(dist(b, t)[off] * np.log(dist(b, t)[off] / dist(a, t)[off])).sum() for t in TAUS])
    assert sne_kl(*xy[::-1]).item() == pytest.approx(ref, rel=1e-9)


def test_cospress_trains_the_compression_only_by_kl_and_the_student_only_by_angles():
    torch.manual_seed(2)
    pen = CosPress(4, 8)
    h, phi = torch.randn(16, 4, requires_grad=True), torch.randn(16, 8)
    g = pen.compress(phi)
    (1 - F.cosine_similarity(h, g.detach(), dim=1)).mean().backward()
    assert all(p.grad is None for p in pen.compress.parameters()) and h.grad.abs().sum() > 0
    h.grad = None
    sne_kl(phi, pen.compress(phi)).backward()
    assert h.grad is None and all(p.grad.abs().sum() > 0 for p in pen.compress.parameters())
    total = pen(h, phi)  # the penalty is their sum
    assert total.item() == pytest.approx(
        (sne_kl(phi, pen.compress(phi)) + (1 - F.cosine_similarity(h, pen.compress(phi), dim=1)).mean()).item()
    )
