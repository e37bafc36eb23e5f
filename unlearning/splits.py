"""The splits that the service's jobs and the benchmark both draw, defined once so that both draw them alike:
the RMIA reference models' halves of the training split and the held-out half of the test split. NumPy only.
"""

from __future__ import annotations

import numpy as np

# Stored reference sets and every result measured with them depend on these two: changing either draws other
# halves or trains other models than the ones already stored.
REFERENCE_PAIR_SEED = 1000  # pair p of reference models splits the training split with rng seed 1000 + p
REFERENCE_MODEL_SEED = 100  # reference model i trains with seed 100 + i


def reference_membership(n: int, k: int, excluded: np.ndarray | None = None) -> np.ndarray:
    """Which of `n` training samples each of `k` reference models trains on, as a (k, n) bool matrix.

    Models come in pairs: model 2p trains on a random half of the kept samples drawn with rng seed
    REFERENCE_PAIR_SEED + p and model 2p + 1 on the rest, so every kept sample is OUT of exactly k/2 models
    (offline RMIA's OUT references). `excluded` (positions, e.g. every sample a deletion request claimed) are
    OUT of all k: no reference model ever holds them. Without exclusions the halves are those drawn before
    exclusions existed, so stored sets and measured results keep their meaning.
    """
    if k < 2 or k % 2:
        raise ValueError(f"reference models come in complementary pairs: k must be even and at least 2, got {k}")
    out = np.zeros(n, dtype=bool)
    if excluded is not None and len(excluded):
        out[np.asarray(excluded, dtype=np.int64)] = True
    kept = np.flatnonzero(~out)  # sorted positions; all of them when nothing is excluded
    membership = np.zeros((k, n), dtype=bool)
    for pair in range(k // 2):
        half = kept[np.random.default_rng(REFERENCE_PAIR_SEED + pair).permutation(len(kept))[: len(kept) // 2]]
        membership[2 * pair, half] = True
        membership[2 * pair + 1, kept] = ~membership[2 * pair, kept]
    return membership


def reference_seed(i: int) -> int:
    """The training seed of reference model i."""
    return REFERENCE_MODEL_SEED + i


def holdout_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed halves of a test split of `n` samples, as sorted positions: (held-out, scored).

    The held-out half serves the stopping rule, tuning and RMIA's population; the scored half is what an
    audit reports on. The first n // 2 of a permutation drawn with `seed` are held out: the caller's seed
    keeps its splits, and so its results, as they were.
    """
    order = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half:])
