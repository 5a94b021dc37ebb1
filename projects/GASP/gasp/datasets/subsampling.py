"""Uniform random subsets of a sweep's rows, drawn in data loader workers."""
from typing import Optional

import numpy as np


def sample_rng() -> np.random.Generator:
    """A generator for one sample's draws, seeded from numpy's global RNG (which mmengine
    seeds per worker and rank), so that a seeded run draws alike."""
    return np.random.default_rng(np.random.randint(2**31))


def sorted_rows(rows: np.ndarray, count: int) -> np.ndarray:
    """``np.sort(rows)`` for distinct row indices in ``range(count)``, through a mask: on a
    sweep's rows this is faster than sorting (numpy sorts 8k int64 in 0.3 ms)."""
    chosen = np.zeros(count, bool)
    chosen[rows] = True
    return np.flatnonzero(chosen)


def random_rows(count: int, size: Optional[int], rng: np.random.Generator) -> np.ndarray:
    """Sorted (min(count, size),) int64 indices: a uniform random subset of
    ``range(count)`` without replacement; all of them when ``size`` is None or >= ``count``.

    numpy's legacy ``np.random.choice(count, size, replace=False)`` permutes all ``count``
    rows (2 ms for a 96k-point sweep); the generator draws only ``size`` of them.
    """
    if size is None or count <= size:
        return np.arange(count)
    return sorted_rows(rng.choice(count, size, replace=False, shuffle=False), count)
