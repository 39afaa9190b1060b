"""Transferability scores: how well a teacher set's features explain a dataset's labels, from the
training split alone, before any student is trained. Higher is better for every score.

- `probe`: accuracy of a logistic regression (scikit-learn, C fixed) on a held-out stratified
  fifth of the training split, fitted on the other four fifths.
- `logme`: LogME (You et al., ICML 2021): the log marginal evidence per example of Bayesian
  linear regression of the one-hot labels on the features, α and β fitted by the fixed-point
  iteration in the SVD basis (B-Tuning's teacher weights rest on the same evidence).
- `hscore`: H-score (Bao et al., ICIP 2019), tr(Cov(f)⁻¹ Cov(E[f | y])), with the Ledoit-Wolf
  shrinkage covariance (Ibrahim et al., ICLR 2023: the plain estimate breaks in high dimension).
- `knn`: k-nearest-neighbour accuracy on the same held-out fifth (scikit-learn, Euclidean).
- `alignment`: centred kernel alignment (Cortes et al., JMLR 2012) between the linear kernel of
  the features and the label kernel Y Yᵀ: how much of the features' similarity structure is
  class structure — the signal AFT's kernel penalty transfers.

Features are standardised per column first (a teacher set concatenates teachers of different
scales), and at most `max_examples` training examples are used (a stratified draw), so a score
costs seconds whatever the dataset. LEEP and NCE need the teacher's own source-class predictions,
which a feature cache does not hold; they are not offered.
"""

from __future__ import annotations

import math

import numpy as np

SCORE_NAMES = ("probe", "logme", "hscore", "knn", "alignment")
SCORE_LABELS = {
    "probe": "probe accuracy (held-out train fifth)",
    "logme": "LogME (evidence / example)",
    "hscore": "H-score (shrinkage)",
    "knn": "kNN accuracy (held-out train fifth)",
    "alignment": "kernel alignment with labels",
}


# ----------------------------------------------------------------------------- LogME
def logme_column(f_svd, y: np.ndarray, max_iter: int = 100, tol: float = 1e-6):
    """Evidence per example, α, β and posterior mean for one target column y (n,)."""
    u, s, vh, d = f_svd
    n = len(y)
    sigma = s**2
    x = u.T @ y
    x2 = x**2
    res_x2 = max(float(y @ y - x2.sum()), 0.0)  # part of y outside the span of F
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 * (t / (t + sigma)) ** 2).sum()) + res_x2
        alpha, beta = gamma / (m2 + 1e-12), (n - gamma) / (res2 + 1e-12)
        if abs(alpha / beta - t) <= tol * t:
            break
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 * (t / (t + sigma)) ** 2).sum()) + res_x2
    k = len(s)
    logdet = float(np.log(alpha + beta * sigma).sum()) + (d - k) * math.log(alpha)  # zero eigenvalues beyond rank
    evidence = (
        d / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - logdet / 2
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * math.log(2 * math.pi)
    )
    mean = vh.T @ (s * x / (t + sigma))
    return evidence / n, alpha, beta, mean


def logme(features: np.ndarray, labels: np.ndarray, n_classes: int | None = None):
    """LogME of features for class labels: mean evidence per example over the one-hot columns,
    and the posterior-mean weights (d × C)."""
    f = np.asarray(features, np.float64)
    n_classes = n_classes or int(labels.max()) + 1
    u, s, vh = np.linalg.svd(f, full_matrices=False)
    svd = (u, s, vh, f.shape[1])
    evidences, means = [], []
    for c in range(n_classes):
        e, _, _, m = logme_column(svd, (labels == c).astype(np.float64))
        evidences.append(e)
        means.append(m)
    return float(np.mean(evidences)), np.stack(means, axis=1)


# ----------------------------------------------------------------------------- the other scores
def h_score(f: np.ndarray, y: np.ndarray) -> float:
    """tr(Cov(f)⁻¹ Cov(E[f | y])) with the Ledoit-Wolf covariance of f."""
    from sklearn.covariance import LedoitWolf

    f = f - f.mean(0)
    cov = LedoitWolf(assume_centered=True).fit(f).covariance_
    classes, inverse = np.unique(y, return_inverse=True)
    means = np.stack([f[inverse == c].mean(0) for c in range(len(classes))])
    g = means[inverse]  # E[f | y] per example
    cov_g = g.T @ g / len(f)
    return float(np.trace(np.linalg.solve(cov, cov_g)))


def kernel_alignment(f: np.ndarray, y: np.ndarray) -> float:
    """Centred alignment ⟨K_c, L_c⟩ / (‖K_c‖ ‖L_c‖) of K = f fᵀ and L = Y Yᵀ (Y one-hot), computed
    in feature space: ‖Fᵀ Y‖² / (‖Fᵀ F‖ ‖Yᵀ Y‖) with F, Y centred (no n × n matrix)."""
    fc = f - f.mean(0)
    onehot = np.eye(int(y.max()) + 1)[y]
    yc = onehot - onehot.mean(0)
    cross = np.linalg.norm(fc.T @ yc) ** 2
    denom = np.linalg.norm(fc.T @ fc) * np.linalg.norm(yc.T @ yc)
    return float(cross / denom) if denom > 0 else 0.0


def _holdout(y: np.ndarray, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    _, counts = np.unique(y, return_counts=True)
    n_held = int(np.ceil(fraction * len(y)))
    return train_test_split(idx, test_size=n_held, random_state=seed, stratify=_stratify(y, n_held))


def _stratify(y: np.ndarray, n_smaller: int):
    """`y` to stratify a split by, when sklearn can: every class has two examples and the smaller
    side has room for one of each class; else None (a plain random split)."""
    classes, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= 2 and min(n_smaller, len(y) - n_smaller) >= len(classes) else None


def probe_accuracy(f, y, holdout: float, seed: int, C: float) -> float:
    from sklearn.linear_model import LogisticRegression

    fit, held = _holdout(y, holdout, seed)
    clf = LogisticRegression(C=C, max_iter=500).fit(f[fit], y[fit])
    return float(clf.score(f[held], y[held]))


def knn_accuracy(f, y, holdout: float, seed: int, k: int) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    fit, held = _holdout(y, holdout, seed)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(fit))).fit(f[fit], y[fit])
    return float(clf.score(f[held], y[held]))


# ----------------------------------------------------------------------------- all of them
def subsample(y: np.ndarray, max_examples: int, seed: int) -> np.ndarray:
    """Indices of at most `max_examples` examples, every class in proportion (all if fewer)."""
    if len(y) <= max_examples:
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(
        np.arange(len(y)), train_size=max_examples, random_state=seed, stratify=_stratify(y, max_examples)
    )
    return np.sort(idx)


def standardise(f: np.ndarray) -> np.ndarray:
    """Per-column z-scores (constant columns become 0)."""
    f = np.asarray(f, np.float64)
    std = f.std(0)
    return (f - f.mean(0)) / np.where(std > 0, std, 1.0)


def transferability(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    max_examples: int,
    holdout: float,
    knn_k: int,
    probe_C: float,
    seed: int,
) -> dict:
    """Every score of SCORE_NAMES for one teacher set, from its training features only, and the
    seconds each took (settings: config.yaml `scores:`, defaults in the schema). Raises
    ValueError (naming the problem) for features it cannot score."""
    import time

    y = np.asarray(train_labels).astype(np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("scores need at least two classes in the training split")
    if not np.isfinite(train_features).all():
        raise ValueError("training features hold non-finite entries (NaN/Inf)")
    idx = subsample(y, int(max_examples), int(seed))
    f, y = standardise(train_features[idx]), y[idx]
    if not f.any():
        raise ValueError("every feature is constant over the training examples drawn: nothing to score")
    y = np.unique(y, return_inverse=True)[1]  # classes 0..C-1 of the examples drawn
    jobs = {
        "probe": lambda: probe_accuracy(f, y, holdout, int(seed), float(probe_C)),
        "logme": lambda: logme(f, y)[0],
        "hscore": lambda: h_score(f, y),
        "knn": lambda: knn_accuracy(f, y, holdout, int(seed), int(knn_k)),
        "alignment": lambda: kernel_alignment(f, y),
    }
    scores, seconds = {}, {}
    for name in SCORE_NAMES:
        t0 = time.perf_counter()
        scores[name] = float(jobs[name]())
        seconds[name] = round(time.perf_counter() - t0, 3)
    return {"scores": scores, "seconds": seconds, "n_examples": int(len(y)), "dim": int(f.shape[1])}


def rank_sets(scores: dict[str, dict], by: str, order: list[str]) -> list[str]:
    """Teacher-set ids from best to worst by score `by`; ties keep `order` (the candidates'
    order in the config). A score that is not finite is refused, naming the set."""
    bad = [ts for ts in order if not math.isfinite(scores[ts][by])]
    if bad:
        raise ValueError(f"score {by!r} is not finite for teacher set(s) {bad}: cannot rank them")
    return sorted(order, key=lambda ts: (-scores[ts][by], order.index(ts)))
