"""Golden values for the baseline penalties, computed independently with plain loops; at the same
β each baseline's default equals the formula of the AFT reference code (Qiu et al. 2024), written
out here from its description, never imported: RKD (distance + 2·angle)/2 with distances over
the mean positive one, FT's per-example L1 sum of unit-normalised vectors, KD's MSE against the
raw features, logit KD's T²·KL."""

import itertools

import numpy as np
import pytest
import torch

from aftbench.methods.registry import PENALTIES, build_penalty
from aftbench.methods.rkd import angle_loss, distance_loss


def smooth_l1(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b))
    return float(np.mean(np.where(d < 1, 0.5 * d**2, d - 0.5)))


def ref_distances(x):
    n = len(x)
    d = np.array([[np.linalg.norm(x[i] - x[j]) for j in range(n)] for i in range(n)])
    mean = np.mean([d[i, j] for i in range(n) for j in range(n) if d[i, j] > 0])
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
        smooth_l1(ref_distances(H), ref_distances(PHI)) + 2 * smooth_l1(ref_angles(H), ref_angles(PHI)), rel=1e-9
    )


@pytest.mark.parametrize("duplicate", [False, True], ids=["distinct rows", "a duplicate row"])
def test_rkd_default_is_the_reference_loss(duplicate):
    """(distance + 2·angle) / 2, distances over the mean of the positive ones (a duplicated
    example adds zeros that carry no scale)."""
    h, phi = (np.vstack([H, H[:1]]), np.vstack([PHI, PHI[:1]])) if duplicate else (H, PHI)
    reference = (smooth_l1(ref_distances(h), ref_distances(phi)) + 2 * smooth_l1(ref_angles(h), ref_angles(phi))) / 2
    assert build_penalty("rkd", 2, 3)(torch.tensor(h), torch.tensor(phi)).item() == pytest.approx(reference, rel=1e-9)


def test_kd_is_the_reference_mse_on_raw_features():
    """KD: mean over entries of (W h + b − Φ)², Φ as cached (no rescale), so β is the reference's β."""
    pen = build_penalty("kd", 2, 3)
    assert pen.target_scale == "raw" == PENALTIES["kd"].target_scale
    w, b = pen.proj.weight.detach().numpy(), pen.proj.bias.detach().numpy()
    hand = np.mean([(w @ x + b - t) ** 2 for x, t in zip(H, PHI, strict=False)])
    got = pen(torch.tensor(H, dtype=torch.float32), torch.tensor(PHI, dtype=torch.float32)).item()
    assert got == pytest.approx(hand, rel=1e-6)
    assert build_penalty("kd", 2, 3, {"target_scale": "rms"}).target_scale == "rms"
    with pytest.raises(ValueError, match="target_scale"):
        build_penalty("kd", 2, 3, {"target_scale": "unit"})


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
    student = torch.nn.Linear(3, 6)
    x = torch.randn(64, 3)
    phi = torch.tanh(x @ torch.randn(3, 10))
    prepare = getattr(PENALTIES[name], "prepare_targets", None)
    if getattr(PENALTIES[name], "uses_logits", False):  # compares the 6 student outputs with 6 teacher logits
        phi = 3 * phi[:, :6]
    if prepare is not None:
        labels = (x[:, 0] > 0).long().numpy() + (x[:, 1] > 0).long().numpy()
        phi = torch.from_numpy(prepare(phi.numpy(), labels, [10], 3)[0])
    pen = build_penalty(name, 6, phi.shape[1])
    if pen.needs_initial_features:  # B-Tuning: the map of the initial student, fixed from here on
        pen.fit_initial(student(x).detach().numpy(), labels)
    opt = torch.optim.Adam([{"params": list(student.parameters())}, *pen.param_groups()], lr=0.02)
    first = pen(student(x), phi)
    first.backward()
    assert student.weight.grad.abs().sum() > 0
    for _ in range(300):
        opt.zero_grad()
        loss = pen(student(x), phi)
        loss.backward()
        opt.step()
    # B-Tuning's target is the teachers' label prediction: a linear student of 3 inputs can
    # only approach it, not reach it
    assert loss.item() < (0.9 if name == "btune" else 0.5) * first.item()


# ----------------------------------------------------------------------------- LogME / B-Tuning
def _gaussian_logpdf(y, cov):
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return float(-0.5 * (y @ np.linalg.solve(cov, y) + logdet + len(y) * np.log(2 * np.pi)))


@pytest.mark.parametrize("n, d", [(40, 5), (12, 30)])  # more examples than features, and fewer
def test_logme_evidence_is_the_marginal_likelihood(n, d):
    """At its fitted α, β, LogME's evidence must equal log N(y; 0, F Fᵀ/α + I/β) / n, computed
    here directly from the covariance (no SVD), and α, β must maximise it locally."""
    from aftbench.selection.transferability import logme_column

    rng = np.random.default_rng(n)
    f = rng.standard_normal((n, d))
    y = (f[:, 0] + 0.5 * rng.standard_normal(n) > 0).astype(float)
    u, s, vh = np.linalg.svd(f, full_matrices=False)
    ev, alpha, beta, mean = logme_column((u, s, vh, d), y)

    def direct(a, b):
        return _gaussian_logpdf(y, f @ f.T / a + np.eye(n) / b) / n

    assert ev == pytest.approx(direct(alpha, beta), rel=1e-8, abs=1e-10)
    for fa, fb in ((1.3, 1), (1 / 1.3, 1), (1, 1.3), (1, 1 / 1.3)):
        assert direct(alpha * fa, beta * fb) <= ev + 1e-6  # (α → ∞ can be the optimum: a flat boundary)
    # posterior mean of the weights: β (αI + β FᵀF)⁻¹ Fᵀ y
    np.testing.assert_allclose(
        mean, beta * np.linalg.solve(alpha * np.eye(d) + beta * f.T @ f, f.T @ y), rtol=1e-6, atol=1e-9
    )


def test_logme_prefers_informative_features_and_btune_weights_follow():
    from aftbench.methods.btune import BTuning
    from aftbench.selection.transferability import logme

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    good = np.eye(3)[labels] @ rng.standard_normal((3, 8)) + 0.3 * rng.standard_normal((300, 8))
    noise = rng.standard_normal((300, 8))
    assert logme(good, labels)[0] > logme(noise, labels)[0]
    target, info = BTuning.prepare_targets(np.hstack([noise, good]), labels, [8, 8], 3, temperature=0.1)
    assert info["teacher_weights"][1] > 0.99 and target.shape == (300, 6)
    np.testing.assert_array_equal(target[:, 3:], np.eye(3)[labels])


# ----------------------------------------------------------------------------- logit KD, factor transfer
def test_logit_kd_golden():
    t = 2.0
    s_logits = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t_logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = softmax(t_logits / t), softmax(s_logits / t)
    expected = float((p * np.log(p / q)).sum(1).mean()) * t * t
    pen = build_penalty("logit_kd", 3, 3, {"temperature": t})
    assert pen(torch.tensor(s_logits), torch.tensor(t_logits)).item() == pytest.approx(expected, rel=1e-9)
    assert pen(torch.tensor(t_logits), torch.tensor(t_logits)).item() == pytest.approx(0.0, abs=1e-12)
    assert PENALTIES["logit_kd"].uses_logits


def test_logit_kd_two_classes_tells_a_teacher_from_its_negation():
    """Binary tasks: a teacher and its negation are different teachers, and the student is pulled
    toward the teacher's probabilities, not toward 50/50."""
    t = 4.0
    teacher = torch.tensor([[0.0, 3.0], [0.0, -2.0], [0.0, 1.0]])
    pen = build_penalty("logit_kd", 2, 2, {"temperature": t})
    agree, negated = pen(teacher.clone(), teacher), pen(-teacher, teacher)
    assert agree.item() == pytest.approx(0.0, abs=1e-12) and negated.item() > 0.05
    p = torch.softmax(teacher / t, 1)
    uniform = torch.zeros_like(teacher)
    expected = float((p * (p.log() - torch.log_softmax(uniform / t, 1))).sum(1).mean()) * t * t
    assert pen(uniform, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_logit_kd_refuses_one_column_per_example():
    pen = build_penalty("logit_kd", 2, 2, {"temperature": 4.0})
    with pytest.raises(ValueError, match=r"logit_kd: the teacher's logits are \(3, 1\), the student's \(3, 2\)"):
        pen(torch.zeros(3, 2), torch.zeros(3, 1))


def test_factor_transfer_penalty_and_paraphraser():
    from aftbench.train.paraphraser import train_paraphraser

    pen = build_penalty("ft", 4, 3)
    h = torch.randn(8, 4)
    with torch.no_grad():
        factors = 5.0 * pen.translator(h)  # same direction, other scale: zero after L2 normalisation
    assert pen(h, factors).item() == pytest.approx(0.0, abs=1e-6)
    # the reference's scale: per example, the L1 norm of the difference of unit vectors; then the batch mean
    s_fac, t_fac = pen.translator(h).detach().numpy(), -factors.numpy()
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    hand = np.mean([np.abs(unit(a) - unit(b)).sum() for a, b in zip(s_fac, t_fac, strict=False)])
    assert pen(h, -factors).item() == pytest.approx(hand, rel=1e-6)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 12))  # rank 3 in 12-d
    model, info = train_paraphraser(feats, rate=0.5, steps=400, lr=1e-2)
    assert info["d_factor"] == 6 and info["final_train_mse"] < 0.2 * info["first_batch_mse"]


def test_btune_default_is_the_reference_regulariser():
    """The AFT reference's B-Tuning: MSE between h · M (M: the LogME posterior mean of the initial
    student's features for the one-hot labels, fixed) and the LogME-weighted teachers' predictions;
    M is a buffer, so a checkpoint keeps it. `student_map: batch` is the named other regulariser."""
    from aftbench.selection.transferability import logme

    rng = np.random.default_rng(0)
    h0 = rng.standard_normal((40, 5))
    labels = np.arange(40) % 3
    feats = rng.standard_normal((40, 8))
    phi, _ = PENALTIES["btune"].prepare_targets(feats, labels, [8], 3)
    pen = build_penalty("btune", 5, phi.shape[1])
    assert pen.student_map == "initial" and "initial_map" in pen.state_dict()
    pen.fit_initial(h0, labels)
    m = logme(h0, labels, 3)[1]
    np.testing.assert_allclose(pen.initial_map.numpy(), m, rtol=1e-5, atol=1e-6)
    h = rng.standard_normal((40, 5))
    expected = np.mean((h @ m - phi[:, :3]) ** 2)
    got = pen(torch.tensor(h, dtype=torch.float32), torch.tensor(phi)).item()
    assert got == pytest.approx(expected, rel=1e-4)
    batch = build_penalty("btune", 5, phi.shape[1], {"student_map": "batch"})
    assert batch(torch.tensor(h, dtype=torch.float32), torch.tensor(phi)).item() != pytest.approx(got)
