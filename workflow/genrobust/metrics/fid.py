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


def _kernel(gram: np.ndarray, d: int) -> np.ndarray:
    return (gram / d + 1) ** 3


def _off_diagonal_sum(k: np.ndarray) -> float:
    return float(k.sum() - np.trace(k))


def kid_draws(n1: int, n2: int, seed: int, subsets: int = KID_SUBSETS,
              subset_size: int = KID_SUBSET_SIZE) -> tuple[int, list[tuple[np.ndarray, np.ndarray]]]:
    """(subset size m, [(rows of x2, rows of x1)] per subset): clean-fid's draws, in its order."""
    m = min(n1, n2, subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images on each side (got {n1} and {n2})")
    rng = np.random.default_rng(seed)
    return m, [(rng.choice(n2, m, replace=False), rng.choice(n1, m, replace=False)) for _ in range(subsets)]


def kid_wants_gram(n: int, m: int, subsets: int = KID_SUBSETS) -> bool:
    """Whether a side's whole Gram matrix (n^2 products) costs less than its subsets' (subsets x m^2)."""
    return n * n <= subsets * m * m


def kernel_distance(x1: np.ndarray, x2: np.ndarray, seed: int, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, gram1: np.ndarray | None = None) -> float:
    """KID: clean-fid's `kernel_distance` estimator (mean over random subsets of the unbiased
    MMD^2 with kernel k(x, y) = (x.y / d + 1)^3), with subsets drawn by a seeded generator.

    The same draws and sums as clean-fid's loop, with fewer products: each inner-product matrix
    is taken from the whole Gram matrix where that costs less than the subsets' own products
    (`gram1`: x1's, from a caller that uses it for several x2), and a side whose subset is all
    its rows (the usual case for a shift set's few images per class) has the same within-side
    sum in every subset, and a cross sum that is a sum of its kernel's column sums."""
    x1, x2 = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    d, n1, n2 = x1.shape[1], len(x1), len(x2)
    m, draws = kid_draws(n1, n2, seed, subsets, subset_size)
    if gram1 is None and kid_wants_gram(n1, m, subsets):
        gram1 = x1 @ x1.T
    gram2 = x2 @ x2.T if kid_wants_gram(n2, m, subsets) else None
    whole1, whole2 = m == n1, m == n2  # a subset is a permutation of the side: its sums do not change
    cross = _kernel(x2 @ x1.T, d) if (whole1 or whole2) and n1 * n2 <= subsets * m * m else None
    within1 = _off_diagonal_sum(_kernel(gram1, d)) if whole1 and gram1 is not None else None
    within2 = _off_diagonal_sum(_kernel(gram2, d)) if whole2 and gram2 is not None else None
    column_sums = cross.sum(axis=0) if cross is not None and whole2 else None  # over every x2 row, per x1 row
    row_sums = cross.sum(axis=1) if cross is not None and whole1 and not whole2 else None
    total = 0.0
    for ix, iy in draws:
        a = within2 if within2 is not None else _off_diagonal_sum(_kernel(
            gram2[np.ix_(ix, ix)] if gram2 is not None else x2[ix] @ x2[ix].T, d))
        a += within1 if within1 is not None else _off_diagonal_sum(_kernel(
            gram1[np.ix_(iy, iy)] if gram1 is not None else x1[iy] @ x1[iy].T, d))
        if column_sums is not None:
            b = float(column_sums[iy].sum())
        elif row_sums is not None:
            b = float(row_sums[ix].sum())
        else:
            b = float(_kernel(x2[ix] @ x1[iy].T, d).sum())
        total += a / (m - 1) - b * 2 / m
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
        n_a = len(rows_a[wnid])
        xa = a.of(rows_a[wnid]) if n_a >= 2 else None
        gram_a = None  # a's Gram matrix, when the KIDs of all its cells draw more products than it has
        sizes = [min(n_a, len(rows_b[name][wnid]), KID_SUBSET_SIZE) for name in users]
        if kid and xa is not None and n_a * n_a <= sum(KID_SUBSETS * m * m for m in sizes if m >= 2):
            gram_a = xa @ xa.T
        for name in users:
            n_b = len(rows_b[name][wnid])
            record = {"set": name, "wnid": wnid, "n_a": n_a, "n_b": n_b, "fid": np.nan, "kid": np.nan}
            if xa is not None and n_b >= 2:
                xb = others[name].of(rows_b[name][wnid])
                record["fid"] = frechet_distance(xa, xb)
                if kid:
                    record["kid"] = kernel_distance(xa, xb, derive_seed(seed, "kid", name, wnid), gram1=gram_a)
            records.append(record)
    return pd.DataFrame(records, columns=["set", "wnid", "n_a", "n_b", "fid", "kid"])
