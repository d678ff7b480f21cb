"""Per-class FID and KID between two feature sets (the paper's Table 2).

FID (Heusel et al. 2017) = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2). Per class, the
sets are small (ImageNet-V2 has 10 images a class, Sketch 50) against 2048 dimensions, so the
covariances have rank n - 1 and `scipy.linalg.sqrtm` of a 2048 x 2048 product is both slow
(seconds, x 1000 classes x 8 cells) and ill-conditioned. The trace term needs only the
eigenvalues of S1 S2, which are those of M M^T with M = A1 A2^T / sqrt((n1 - 1)(n2 - 1)) (A the
centred features): tr sqrt(S1 S2) is the nuclear norm of M, an n1 x n2 matrix. That is exact, real
and non-negative by construction (no imaginary parts to discard); with more images than
dimensions on both sides the d x d form is used instead (`frechet_distance`).

FID on a few hundred images is biased upwards (and more so the fewer), so every cell records
the images per class on both sides, and KID (Binkowski et al. 2018; clean-fid's unbiased
estimator with a cubic polynomial kernel over random subsets) is the companion column: it is
unbiased at any n. KID's subsets are drawn from a generator seeded per class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg

from .embeddings import Features

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def _centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    return mu, x - mu


def frechet_distance(x1: np.ndarray, x2: np.ndarray) -> float:
    """FID between two samples of features (n1, d) and (n2, d), each n >= 2."""
    x1, x2 = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    n1, n2 = len(x1), len(x2)
    if min(n1, n2) < 2:
        raise ValueError(f"FID needs at least 2 images on each side (got {n1} and {n2})")
    mu1, a1 = _centred(x1)
    mu2, a2 = _centred(x2)
    tr1 = float((a1 * a1).sum()) / (n1 - 1)
    tr2 = float((a2 * a2).sum()) / (n2 - 1)
    d = x1.shape[1]
    if min(n1, n2) <= d:  # low rank: the nuclear norm of the small cross-Gram matrix
        cross = linalg.svdvals(a1 @ a2.T).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    else:  # more images than dimensions: eigenvalues of the d x d product's symmetric form
        s1, s2 = a1.T @ a1 / (n1 - 1), a2.T @ a2 / (n2 - 1)
        root1 = linalg.sqrtm(s1)
        root1 = root1.real if np.iscomplexobj(root1) else root1
        eig = linalg.eigvalsh(root1 @ s2 @ root1)
        cross = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + tr1 + tr2 - 2 * cross, 0.0))


def kernel_distance(x1: np.ndarray, x2: np.ndarray, seed: int, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE) -> float:
    """KID: clean-fid's `kernel_distance` estimator (mean over random subsets of the unbiased
    MMD^2 with kernel (x.y / d + 1)^3), with subsets drawn by a seeded generator."""
    x1, x2 = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    d = x1.shape[1]
    m = min(len(x1), len(x2), subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images on each side (got {len(x1)} and {len(x2)})")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        x = x2[rng.choice(len(x2), m, replace=False)]
        y = x1[rng.choice(len(x1), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / subsets / m)


def per_class_distances(a: Features, others: dict[str, Features], seed: int = 0, kid: bool = True) -> pd.DataFrame:
    """FID (and KID) of `a` against each of `others`, per class both have: one row per (set,
    wnid) with n_a, n_b, fid, kid (NaN where a side has fewer than 2 images). Each class of `a`
    is read from its features file once for all the other sets."""
    from genrobust.seeding import derive_seed

    rows_a = a.class_rows()
    rows_b = {name: features.class_rows() for name, features in others.items()}
    records = []
    for wnid in sorted(rows_a):
        users = [name for name in others if wnid in rows_b[name]]
        if not users:
            continue
        xa = a.of(rows_a[wnid]) if len(rows_a[wnid]) >= 2 else None
        for name in users:
            n_b = len(rows_b[name][wnid])
            record = {"set": name, "wnid": wnid, "n_a": len(rows_a[wnid]), "n_b": n_b, "fid": np.nan, "kid": np.nan}
            if xa is not None and n_b >= 2:
                xb = others[name].of(rows_b[name][wnid])
                record["fid"] = frechet_distance(xa, xb)
                if kid:
                    record["kid"] = kernel_distance(xa, xb, derive_seed(seed, "kid", name, wnid))
            records.append(record)
    return pd.DataFrame(records, columns=["set", "wnid", "n_a", "n_b", "fid", "kid"])
