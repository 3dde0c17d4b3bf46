"""The comparison kernel against a direct per-pair float64 reference written out here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import compare as cmp
from pipelines.compare import (
    block_spectra,
    compare,
    fft_length,
    resolve_device,
    score_block,
    score_matrices,
    zscore_rows,
)
from pipelines.errors import InputError


# ----------------------------------------------------------------------------------------------
# the reference: c[k] = sum_i sum_j a[i, j + k] * b[i, j], written as plain loops over k
def ref_correlation(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lags, c) for k = -(n - 1) .. m - 1, float64, summing the overlap explicitly."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = a.shape[1], b.shape[1]
    lags = np.arange(-(n - 1), m)
    c = np.empty(len(lags))
    for t, k in enumerate(lags):
        j0, j1 = max(0, -k), min(n, m - k)  # b columns j with 0 <= j + k < m
        c[t] = float(np.sum(a[:, j0 + k : j1 + k] * b[:, j0:j1]))
    return lags, c


def ref_compare(a, b, normalize=None) -> tuple[float, int, float]:
    """(score, lag, gap to the second-best lag's score) by the definition."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if normalize == "zscore":
        a, b = ref_zscore(a), ref_zscore(b)
    na, nb = np.sqrt((a * a).sum()), np.sqrt((b * b).sum())
    if na == 0 or nb == 0:
        return 0.0, 0, np.inf
    lags, c = ref_correlation(a, b)
    c = c / (na * nb)
    t = int(np.argmax(c))  # first maximum: the smallest lag on ties
    rest = np.delete(c, t)
    gap = c[t] - rest.max() if rest.size else np.inf
    return float(c[t]), int(lags[t]), float(gap)


def ref_zscore(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    for i, row in enumerate(x):
        if row.max() > row.min():
            out[i] = (row - row.mean()) / row.std()
    return out


def random_set(seed: int, count: int = 24, rows: int = 5, lengths=(1, 40)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((rows, int(n))) for n in rng.integers(lengths[0], lengths[1] + 1, count)]
    # all-negative pairs: a negative and a positive matrix correlate negatively at every lag
    mats.append(-np.abs(rng.standard_normal((rows, 9))) - 0.1)
    mats.append(np.abs(rng.standard_normal((rows, 4))) + 0.1)
    mats.append(np.zeros((rows, 6)))
    mats.append(rng.standard_normal((rows, 1)) * 1e3)  # one column, large scale
    return mats


def reference_matrix(mats, normalize=None):
    n = len(mats)
    score, lag, gap = np.zeros((n, n)), np.zeros((n, n), int), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            score[i, j], lag[i, j], gap[i, j] = ref_compare(mats[i], mats[j], normalize)
    return score, lag, gap


def assert_matches(score, lag, ref, rel, tol_gap):
    """Relative error <= rel (plus a floor far below it, for exact-zero references); identical
    lags except where the reference's two best lags are within tol_gap."""
    ref_score, ref_lag, gap = ref
    floor = 1e-15 if rel < 1e-9 else 1e-9
    err = np.abs(score - ref_score)
    worst = np.max(err - rel * np.abs(ref_score))
    assert worst <= floor, f"max relative error {np.max(err / np.maximum(np.abs(ref_score), 1e-300)):.3g}"
    differ = lag != ref_lag
    assert (gap[differ] <= tol_gap).all(), "a lag differs where the best lag is not a near-tie"


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, rel", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("shape", ["small", "benchmark"])
def test_kernel_equals_reference_on_mixed_lengths(dtype, rel, shape):
    # small: 1-40 columns, 5 rows, edge cases; benchmark: 20 rows, 150-250 columns
    mats = random_set(1) if shape == "small" else random_set(9, count=8, rows=20, lengths=(150, 250))
    ref = reference_matrix(mats)
    score, lag = score_matrices(mats, dtype=dtype, device="cpu")
    assert score.dtype == np.dtype(dtype) and lag.dtype == np.int32
    assert_matches(score, lag, ref, rel, tol_gap=1e-5 if dtype == "float32" else 1e-12)


def test_kernel_blocks_chunks_and_upper():
    """Other blocks, row chunks of any size and the upper-only diagonal give the same numbers."""
    mats = random_set(2, count=15)
    nfft = fft_length(max(x.shape[1] for x in mats))
    whole = block_spectra(mats, nfft, dtype="float64")
    full_score, full_lag = score_block(whole, whole)
    for chunk in (1, 3000, 10**9):
        s, lg = score_block(whole, whole, chunk_bytes=chunk)
        np.testing.assert_allclose(s, full_score, rtol=0, atol=1e-13)
        assert (lg == full_lag).all()
    up_s, up_lag = score_block(whole, whole, upper=True, chunk_bytes=3000)
    iu = np.triu_indices(len(mats), 1)
    np.testing.assert_allclose(up_s[iu], full_score[iu], rtol=0, atol=1e-13)
    assert (up_lag[iu] == full_lag[iu]).all()
    left = block_spectra(mats[:6], nfft, dtype="float64")
    right = block_spectra(mats[6:], nfft, dtype="float64")
    s, lg = score_block(left, right)
    np.testing.assert_allclose(s, full_score[:6, 6:], rtol=0, atol=1e-13)
    assert (lg == full_lag[:6, 6:]).all()


def test_symmetry_self_and_zero():
    mats = random_set(3, count=10)
    for dtype in ("float32", "float64"):
        s, lg = score_matrices(mats, dtype=dtype)
        np.testing.assert_allclose(s, s.T, atol=1e-6 if dtype == "float32" else 1e-14)
        zero = len(mats) - 2
        nonzero = [k for k in range(len(mats)) if k != zero]
        assert (np.abs(np.diag(s)[nonzero] - 1) < 1e-6).all() and (np.diag(lg)[nonzero] == 0).all()
        assert (s[zero] == 0).all() and (s[:, zero] == 0).all()
        assert (lg[zero] == 0).all() and (lg[:, zero] == 0).all()
        assert s.max() <= 1.0 and s.min() >= -1.0
    for a in mats:
        score, lag = compare(a, a)
        if np.any(a):
            assert abs(score - 1.0) < 1e-12 and lag == 0
        else:
            assert (score, lag) == (0.0, 0)
    # compare(b, a) = (score, -lag) away from ties
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 11)), rng.standard_normal((3, 5))
    (s1, l1), (s2, l2) = compare(a, b), compare(b, a)
    assert abs(s1 - s2) < 1e-12 and l1 == -l2


def test_all_negative_pair_gets_its_true_negative_score():
    rng = np.random.default_rng(4)
    neg = -np.abs(rng.standard_normal((4, 7))) - 0.5
    pos = np.abs(rng.standard_normal((4, 3))) + 0.5
    score, lag, _ = ref_compare(neg, pos)
    assert score < 0
    assert compare(neg, pos) == pytest.approx((score, lag), abs=1e-12)
    for dtype, tol in (("float32", 1e-6), ("float64", 1e-12)):
        s, lg = score_matrices([neg], [pos], dtype=dtype)
        assert s[0, 0] < 0 and abs(s[0, 0] - score) < tol and lg[0, 0] == lag
        s, lg = score_matrices([pos], [neg], dtype=dtype)
        assert s[0, 0] < 0 and abs(s[0, 0] - score) < tol and lg[0, 0] == -lag


def test_exact_ties_take_the_smallest_lag():
    a = np.array([[1.0, 0.0, 1.0]])
    b = np.array([[1.0]])
    assert compare(a, b) == (pytest.approx(1 / np.sqrt(2)), 0)
    assert compare(b, a) == (pytest.approx(1 / np.sqrt(2)), -2)  # ties: not -lag
    assert compare(np.ones((2, 3)), np.ones((2, 1)))[1] == 0


def test_zscore():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 12)) * 5 + 100
    b = rng.standard_normal((3, 8))
    a[1] = 7.25  # a constant row becomes zeros
    np.testing.assert_allclose(zscore_rows(a), ref_zscore(a), atol=1e-12)
    assert (zscore_rows(a)[1] == 0).all()
    score, lag, _ = ref_compare(a, b, "zscore")
    assert compare(a, b, normalize="zscore") == pytest.approx((score, lag), abs=1e-12)
    s, lg = score_matrices([a], [b], normalize="zscore", dtype="float64")
    assert abs(s[0, 0] - score) < 1e-12 and lg[0, 0] == lag
    const = np.full((3, 5), 3.0)
    assert compare(const, b, normalize="zscore") == (0.0, 0)
    assert compare(const, b) != (0.0, 0)


def test_compare_fft_path_for_long_pairs(monkeypatch):
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 60)), rng.standard_normal((2, 45))
    direct = compare(a, b)
    monkeypatch.setattr(cmp, "DIRECT_LIMIT", 10)
    via_fft = compare(a, b)
    assert via_fft[0] == pytest.approx(direct[0], abs=1e-12) and via_fft[1] == direct[1]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 4),
    st.lists(st.integers(1, 12), min_size=2, max_size=5),
    st.integers(0, 2**32 - 1),
)
def test_kernel_property(rows, lengths, seed):
    rng = np.random.default_rng(seed)
    mats = [np.round(rng.standard_normal((rows, n)), 1) for n in lengths]  # rounding makes ties
    ref = reference_matrix(mats)
    s, lg = score_matrices(mats, dtype="float64")
    assert_matches(s, lg, ref, 1e-12, tol_gap=1e-12)
    for i, a in enumerate(mats):
        for j, b in enumerate(mats):
            score, lag = compare(a, b)
            assert score == pytest.approx(ref[0][i, j], abs=1e-12)
            assert lag == ref[1][i, j] or ref[2][i, j] <= 1e-12  # sums in another order: near-ties


def test_fft_length_is_smooth_and_long_enough():
    for n in range(1, 400):
        size = fft_length(n)
        assert size >= 2 * n - 1
        rest = size
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        assert rest == 1
        assert all(not _smooth(s) for s in range(2 * n - 1, size))
    assert fft_length(250) == 500


def _smooth(x: int) -> bool:
    for p in (2, 3, 5):
        while x % p == 0:
            x //= p
    return x == 1


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.ones((2, 3)), np.ones((3, 3)), "b: 3 rows"),
        (np.ones(3), np.ones((1, 3)), "a: not 2-D"),
        (np.ones((2, 0)), np.ones((2, 3)), "a: fewer than 1 column"),
        (np.array([[1.0, np.nan]]), np.ones((1, 3)), "a: contains NaN"),
        (np.ones((1, 3)), np.array([[np.inf]]), "b: contains NaN or inf"),
        (np.array([["x", "y"]]), np.ones((1, 3)), "a: not numeric"),
    ],
)
def test_compare_refuses_bad_input(a, b, match):
    with pytest.raises(InputError, match=match):
        compare(a, b)


def test_options_and_device():
    with pytest.raises(InputError, match="normalize"):
        compare(np.ones((1, 2)), np.ones((1, 2)), normalize="minmax")
    with pytest.raises(InputError, match="dtype"):
        score_matrices([np.ones((1, 2))], dtype="float16")
    assert resolve_device("cpu") == "cpu"
    if cmp.cupy_or_none() is None:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(InputError, match="CuPy"):
            resolve_device("cuda")
    with pytest.raises(InputError, match="device"):
        resolve_device("tpu")


class NumpyAsDevice:
    """Stands in for CuPy: NumPy's functions, but not ``numpy`` itself, so the kernel takes its
    device branch (no host workspaces, plain transposes, irfft without ``out=``) on CPU."""

    def __getattr__(self, name):
        return getattr(np, name)


def test_the_device_code_path_on_numpy(monkeypatch):
    proxy = NumpyAsDevice()
    monkeypatch.setattr(cmp, "array_module", lambda device: proxy if device == "cuda" else np)
    mats = random_set(10, count=12)
    for dtype in ("float32", "float64"):
        host = score_matrices(mats, dtype=dtype, device="cpu")
        device = score_matrices(mats, dtype=dtype, device="cuda")
        tol = 1e-6 if dtype == "float32" else 1e-13
        np.testing.assert_allclose(device[0], host[0], rtol=0, atol=tol)
        assert (device[1] == host[1]).all()
    nfft = fft_length(max(x.shape[1] for x in mats))
    spec = block_spectra(mats, nfft, dtype="float64", device="cuda")
    assert spec.device == "cuda"
    up_s, up_lag = score_block(spec, spec, upper=True, chunk_bytes=2000)
    full_s, full_lag = score_matrices(mats, dtype="float64")
    iu = np.triu_indices(len(mats), 1)
    np.testing.assert_allclose(up_s[iu], full_s[iu], atol=1e-13)
    assert (up_lag[iu] == full_lag[iu]).all()
