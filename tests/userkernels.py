"""User kernels for the compare grid's tests (importable on the workers: tests/ is on their path)."""

from __future__ import annotations

import numpy as np


def pairwise(list_a: list[np.ndarray], list_b: list[np.ndarray]) -> np.ndarray:
    """Symmetric: the cosine of the matrices' row-mean vectors (0 for a zero mean vector)."""
    ma = np.stack([x.mean(axis=1) for x in list_a])
    mb = np.stack([x.mean(axis=1) for x in list_b])
    na, nb = np.linalg.norm(ma, axis=1), np.linalg.norm(mb, axis=1)
    den = np.outer(na, nb)
    return np.divide(ma @ mb.T, den, out=np.zeros_like(den), where=den > 0)


def directed(list_a: list[np.ndarray], list_b: list[np.ndarray]) -> np.ndarray:
    """Not symmetric: a's mean minus b's column count / 100."""
    return np.array([[a.mean() - b.shape[1] / 100 for b in list_b] for a in list_a])


def wrong_shape(list_a: list[np.ndarray], list_b: list[np.ndarray]) -> np.ndarray:
    return np.zeros((len(list_a) + 1, len(list_b)))
