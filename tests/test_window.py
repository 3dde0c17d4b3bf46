"""The windowed comparison (S tables, best pair of windows) and user kernels, alone and on the grid."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time

import dask
import numpy as np
import pytest
import yaml
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import convolve2d

import userkernels
from conftest import BIN, DaskProcesses, subprocess_env
from flows import grid_executor
from flows.compare import all_pairs
from pipelines.compare import compare_window, window_table
from pipelines.errors import InputError
from pipelines.grid import plan_grid

pytestmark = pytest.mark.filterwarnings("ignore:Object at _SUCCESS is not recognized")


# ----------------------------------------------------------------------------------------------
# the reference: every pair of windows, one at a time
def ref_window(a, b, w) -> tuple[float, int, int, float]:
    """(score, p, q, gap to the second best) by the definition, as a direct loop."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    values = []
    for p in range(a.shape[1] - w + 1):
        for q in range(b.shape[1] - w + 1):
            wa, wb = a[:, p : p + w], b[:, q : q + w]
            den = np.linalg.norm(wa) * np.linalg.norm(wb)
            values.append((float(np.sum(wa * wb)) / den if den > 0 else 0.0, p, q))
    best = max(values, key=lambda v: v[0])
    first = next(v for v in values if v[0] == best[0])  # row-major order: smallest p, then q
    rest = [v[0] for v in values if (v[1], v[2]) != (first[1], first[2])]
    return first[0], first[1], first[2], best[0] - max(rest) if rest else np.inf


def assert_window_matches(found, a, b, w, tol):
    score, p, q, gap = ref_window(a, b, w)
    assert abs(found[0] - score) <= tol
    assert (found[1], found[2]) == (p, q) or gap <= tol, (found, (score, p, q, gap))


def mats_of(seed: int, count: int, rows: int = 3, lengths=(1, 30)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((rows, int(n))) for n in rng.integers(lengths[0], lengths[1] + 1, count)]
    mats[1] = np.zeros((rows, 12))  # a zero matrix
    mats[2][:, :7] = 0.0  # zero windows at its start
    mats[3] = -np.abs(rng.standard_normal((rows, 14))) - 0.1  # negative against the positive one:
    mats[4] = np.abs(rng.standard_normal((rows, 10))) + 0.1  # every pair of windows scores < 0
    return mats


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m, n, w", [(5, 5, 1), (7, 4, 4), (30, 18, 6), (12, 40, 12), (1, 1, 1)])
def test_window_table_equals_convolve2d(m, n, w):
    rng = np.random.default_rng(m * 100 + n)
    a, b = rng.standard_normal((4, m)), rng.standard_normal((4, n))
    expected = convolve2d(a.T @ b, np.eye(w), mode="valid")
    table = window_table(a, b, w)
    assert table.dtype == np.float64 and table.shape == (m - w + 1, n - w + 1)
    assert np.max(np.abs(table - expected)) <= 1e-12 * np.max(np.abs(expected))
    ints = np.round(a * 10), np.round(b * 10)  # exact sums: equal to the last bit
    assert (window_table(*ints, w) == convolve2d(ints[0].T @ ints[1], np.eye(w), mode="valid")).all()


def test_window_errors_name_the_window():
    a, b = np.ones((2, 5)), np.ones((2, 3))
    for bad in (4, 0, -1, 2.5):
        with pytest.raises(ValueError, match=r"^window: "):
            compare_window(a, b, bad)
        with pytest.raises(ValueError, match=r"^window: "):
            window_table(a, b, bad)
    with pytest.raises(InputError, match="b: 3 rows"):
        compare_window(a, np.ones((3, 4)), 2)


@pytest.mark.parametrize("seed", range(4))
def test_compare_window_equals_the_direct_loop(seed):
    mats = mats_of(seed, 10, lengths=(5, 16))
    for i, a in enumerate(mats):
        for j, b in enumerate(mats):
            for w in {1, 3, min(a.shape[1], b.shape[1])}:
                assert_window_matches(compare_window(a, b, w), a, b, w, 1e-12)
    score, _, _ = compare_window(mats[3], mats[4], 4)
    assert score < 0  # the all-negative pair keeps its negative score
    assert compare_window(mats[1], mats[5], 3) == (0.0, 0, 0)  # zero windows score 0


def test_ties_self_and_swap():
    period = np.array([[1.0, 2.0, 0.0, 3.0], [0.0, 1.0, 1.0, 2.0]])
    a = np.concatenate([period, period, period], axis=1)  # the same windows at p, p + 4, p + 8
    b = period[:, 1:4]
    assert compare_window(a, b, 3) == (1.0, 1, 0)  # ties: the smallest p
    assert compare_window(b, a, 3) == (1.0, 0, 1)
    assert compare_window(a, a, 2)[0] == pytest.approx(1.0, abs=1e-15)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((3, 11)), rng.standard_normal((3, 8))
    (s1, p1, q1), (s2, p2, q2) = compare_window(x, y, 4), compare_window(y, x, 4)
    assert s1 == pytest.approx(s2, abs=1e-14) and (p1, q1) == (q2, p2)
    zero = np.zeros((2, 6))
    assert compare_window(zero, a, 3) == (0.0, 0, 0)
    z = compare_window(a, b, 3, normalize="zscore")
    zscored = [(x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True) for x in (a, b)]  # no constant row
    assert_window_matches(z, *zscored, 3, 1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_compare_window_property(rows, m, n, w, seed):
    rng = np.random.default_rng(seed)
    a, b = np.round(rng.standard_normal((rows, m)), 1), np.round(rng.standard_normal((rows, n)), 1)
    if w > min(m, n):
        with pytest.raises(ValueError, match="window"):
            compare_window(a, b, w)
        return
    assert_window_matches(compare_window(a, b, w), a, b, w, 1e-12)


# ----------------------------------------------------------------------------------------------
# the grid with a window
def pair_loop_window(mats, w):
    n = len(mats)
    score = np.full((n, n), np.nan)
    off_a, off_b = np.full((n, n), -1), np.full((n, n), -1)
    for i in range(n):
        for j in range(n):
            if i != j and min(mats[i].shape[1], mats[j].shape[1]) >= w:
                score[i, j], off_a[i, j], off_b[i, j] = compare_window(mats[i], mats[j], w)
    return score, off_a, off_b


def assert_grid_matches(res, mats, w, tol):
    score, off_a, off_b = res.score, res["offset_a"], res["offset_b"]
    assert off_a.dtype == off_b.dtype == np.int32
    ref_score, ref_a, ref_b = pair_loop_window(mats, w)
    short = np.array([x.shape[1] < w for x in mats])
    none = short[:, None] | short[None, :]
    assert np.isnan(score[none]).all() and (off_a[none] == -1).all() and (off_b[none] == -1).all()
    off = ~none & ~np.eye(len(mats), dtype=bool)
    np.testing.assert_allclose(score[off], ref_score[off], rtol=0, atol=tol)
    differ = off & ((off_a != ref_a) | (off_b != ref_b))
    for i, j in zip(*np.nonzero(differ)):  # only where the best pair of windows is a near-tie
        assert ref_window(mats[i], mats[j], w)[3] <= tol, (i, j)
    assert (off_a == off_b.T).all()
    np.testing.assert_array_equal(score, score.T)
    diagonal = np.diag(score)[~short]
    assert ((diagonal == 1) | (diagonal == 0)).all() and np.diag(score)[1] == 0  # the zero matrix


@pytest.mark.parametrize("tile", [1, 7, 45])
def test_grid_with_a_window_equals_the_pair_loop(tile):
    mats = mats_of(5, 45, lengths=(3, 30))
    res = all_pairs(mats, tile=tile, device="cpu", dtype="float64", window=6)
    assert res.window == 6 and res.pairs == 45 * 44 // 2 and "window=6" in repr(res)
    assert_grid_matches(res, mats, 6, 1e-12)
    assert res.score[3, 4] < 0
    f32 = all_pairs(mats, tile=tile, device="cpu", window=6)
    assert f32.score.dtype == np.float32
    assert_grid_matches(f32, mats, 6, 1e-5)


def test_grid_with_a_window_on_a_local_cluster_with_resume_and_top_k(local_client, tmp_path, monkeypatch):
    mats = mats_of(6, 41, lengths=(3, 24))  # 41 = 5 tiles of 9, the last of 5
    mats[0] = mats[0][:, :2] if mats[0].shape[1] > 2 else mats[0]  # shorter than the window: NaN
    out = tmp_path / "w.zarr"
    monkeypatch.setattr(grid_executor, "FAIL_TILES", frozenset({"1_3"}))
    with dask.config.set(scheduler="sync"), pytest.raises(RuntimeError, match="injected failure in tile 1_3"):
        all_pairs(mats, tile=9, device="cpu", dtype="float64", window=5, out=out)
    monkeypatch.undo()
    with pytest.raises(InputError, match="output.path: .*other inputs or options"):
        all_pairs(mats, tile=9, device="cpu", dtype="float64", window=6, out=out)  # the window counts
    res = all_pairs(mats, tile=9, device="cpu", dtype="float64", window=5, out=out, client=local_client)
    assert 0 < res.computed_tiles < res.tiles == len(plan_grid(41, 9))
    group = zarr.open_group(str(out), mode="r")
    assert set(group.array_keys()) == {"score", "offset_a", "offset_b"} and group.attrs["window"] == 5
    assert group["offset_a"].chunks == (9, 9)
    assert_grid_matches(res, mats, 5, 1e-12)
    top = all_pairs(mats, tile=9, device="cpu", dtype="float64", window=5, top_k=4, client=local_client)
    key = np.where(np.isnan(res.score), np.inf, -res.score)  # NaN: after every score, ties by index
    np.fill_diagonal(key, np.nan)  # never itself
    order = np.array([np.lexsort((np.arange(41), row))[:4] for row in key])
    assert (order[0] != 0).all() and np.isnan(res.score[0]).all()  # a row of NaN: the smallest others
    np.testing.assert_array_equal(top.index, order)
    np.testing.assert_array_equal(top.score, np.take_along_axis(res.score, order, 1))
    np.testing.assert_array_equal(top["offset_a"], np.take_along_axis(res["offset_a"], order, 1))
    np.testing.assert_array_equal(top["offset_b"], np.take_along_axis(res["offset_b"], order, 1))


def test_window_grid_survives_a_killed_worker(tmp_path):
    """A windowed grid on 3 worker processes, one SIGKILLed mid-run: the store equals the
    per-pair function's results, and a rerun after a crash resumes."""
    config = {
        "flow": "compare",
        "input": {"format": "synthetic", "n": 240, "rows": 6, "min_len": 8, "max_len": 40, "seed": 2},
        "compare": {"tile": 12, "window": 10, "dtype": "float64"},
        "output": {"path": "killed.zarr"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    cluster = DaskProcesses(n_workers=3, nanny=False)
    try:
        process = subprocess.Popen(
            [str(BIN / "dask-flows"), "run", str(path), "--scheduler", cluster.address], cwd=tmp_path,
            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.time() + 120
        while not [p for p in glob.glob(f"{tmp_path}/killed.zarr.tmp-*/_tiles/*.done")][20:]:
            assert process.poll() is None, process.communicate()
            assert time.time() < deadline
            time.sleep(0.02)
        cluster.workers[0].send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "210 tiles" in out or "tiles=210" in out
    finally:
        cluster.close()
    from flows.matrices import synthetic_matrices

    mats = synthetic_matrices(240, 6, 8, 40, seed=2).arrays
    res = all_pairs(mats, tile=12, device="cpu", dtype="float64", window=10)
    store = zarr.open_group(str(tmp_path / "killed.zarr"), mode="r")
    for name in ("score", "offset_a", "offset_b"):
        np.testing.assert_array_equal(store[name][...], res[name])
    sample = [(0, 5), (17, 200), (100, 239), (3, 4)]
    for i, j in sample:
        s, p, q = compare_window(mats[i], mats[j], 10)
        assert abs(store["score"][i, j] - s) < 1e-12 and (store["offset_a"][i, j], store["offset_b"][i, j]) == (p, q)


# ----------------------------------------------------------------------------------------------
# user kernels
def test_user_kernel_on_the_grid_with_resume_and_top_k(local_client, tmp_path, monkeypatch):
    mats = mats_of(7, 23, lengths=(2, 12))
    direct = userkernels.pairwise(mats, mats)
    expected = np.triu(direct) + np.triu(direct, 1).T  # each pair computed once, mirrored
    res = all_pairs(mats, tile=5, device="cpu", dtype="float64", kernel="userkernels:pairwise")
    np.testing.assert_allclose(res.score, expected, rtol=0, atol=1e-15)
    assert res.open().keys() == {"score"} and res.kernel == "userkernels:pairwise"
    out = tmp_path / "k.zarr"
    monkeypatch.setattr(grid_executor, "FAIL_TILES", frozenset({"2_4"}))
    with dask.config.set(scheduler="sync"), pytest.raises(RuntimeError, match="injected"):
        all_pairs(mats, tile=5, device="cpu", dtype="float64", kernel="userkernels:pairwise", top_k=3, out=out)
    monkeypatch.undo()
    top = all_pairs(mats, tile=5, device="cpu", dtype="float64", kernel="userkernels:pairwise", top_k=3,
                    out=out, client=local_client, progress=True)
    assert 0 < top.computed_tiles < top.tiles
    full = expected.copy()
    np.fill_diagonal(full, -np.inf)
    order = np.array([np.lexsort((np.arange(23), -row))[:3] for row in full])
    np.testing.assert_array_equal(top.index, order)
    np.testing.assert_allclose(top.score, np.take_along_axis(expected, order, 1), rtol=0, atol=1e-15)
    assert zarr.open_group(str(out), mode="r").attrs["kernel"] == "userkernels:pairwise"


def test_user_kernel_full_square_when_not_symmetric(local_client):
    mats = mats_of(8, 13, lengths=(2, 12))
    res = all_pairs(mats, tile=4, device="cpu", dtype="float64", kernel="userkernels:directed",
                    symmetric=False, client=local_client)
    assert res.tiles == 16 and res.pairs == 13 * 13
    np.testing.assert_allclose(res.score, userkernels.directed(mats, mats), rtol=0, atol=1e-15)
    top = all_pairs(mats, tile=4, device="cpu", dtype="float64", kernel="userkernels:directed",
                    symmetric=False, top_k=2)
    full = userkernels.directed(mats, mats)
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(top.index, np.array([np.lexsort((np.arange(13), -r))[:2] for r in full]))


def test_user_kernel_errors(local_client, tmp_path, monkeypatch):
    mats = mats_of(9, 6, lengths=(2, 8))
    with pytest.raises(InputError, match="compare.kernel: cannot import 'no_such_pkg.scores:f'"):
        all_pairs(mats, device="cpu", kernel="no_such_pkg.scores:f")
    with pytest.raises(InputError, match="compare.kernel: cannot import 'userkernels:nothing'"):
        all_pairs(mats, device="cpu", kernel="userkernels:nothing")
    with pytest.raises(InputError, match="compare.symmetric"):
        all_pairs(mats, device="cpu", symmetric=False)
    with pytest.raises(InputError, match="compare.kernel: a user kernel takes no window"):
        all_pairs(mats, device="cpu", kernel="userkernels:pairwise", window=3)
    with pytest.raises(ValueError, match="compare.kernel: userkernels:wrong_shape returned shape"):
        all_pairs(mats, device="cpu", kernel="userkernels:wrong_shape")
    # importable here, not on the workers (their path was fixed when they started)
    (tmp_path / "only_here.py").write_text("def f(a, b):\n    return [[0.0] * len(b) for _ in a]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert all_pairs(mats, device="cpu", kernel="only_here:f").score.shape == (6, 6)
    with pytest.raises(InputError, match=r"compare.kernel: cannot import 'only_here:f' .* on worker tcp://"):
        all_pairs(mats, device="cpu", kernel="only_here:f", client=local_client)


def test_flow_with_window_and_kernel(tmp_path):
    from flows.runner import run

    base = {"flow": "compare", "cluster": {"n_workers": 1, "processes": False},
            "input": {"format": "synthetic", "n": 12, "rows": 3, "min_len": 5, "max_len": 15}}
    result = run({**base, "compare": {"window": 5, "tile": 5}, "output": {"path": str(tmp_path / "w.zarr")}})
    store = zarr.open_group(str(tmp_path / "w.zarr"), mode="r")
    assert set(store.array_keys()) == {"score", "offset_a", "offset_b"} and result.compare.window == 5
    assert os.listdir(tmp_path) == ["w.zarr"]  # published, no staging left
    bad = {**base, "compare": {"kernel": "no_such_pkg:f"}, "output": {"path": str(tmp_path / "k.zarr")}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    done = subprocess.run([str(BIN / "dask-flows"), "run", str(path)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)
    assert done.returncode == 2 and "compare.kernel: cannot import 'no_such_pkg:f'" in done.stderr
    assert not (tmp_path / "k.zarr").exists()


def test_the_window_kernel_device_path_on_numpy(monkeypatch):
    """device=cuda through the windowed kernel, NumPy standing in for CuPy (no GPU here)."""
    from pipelines import window

    class NumpyAsDevice:  # NumPy's functions, but not numpy: the kernel's device branch
        def __getattr__(self, name):
            return getattr(np, name)

    monkeypatch.setattr(window, "array_module", lambda device: NumpyAsDevice() if device == "cuda" else np)
    mats = mats_of(10, 14, lengths=(2, 20))
    host = window.window_block(mats, 4, dtype="float64")
    device = window.window_block(mats, 4, dtype="float64", device="cuda")
    assert device.device == "cuda" and host.device == "cpu"
    for upper in (False, True):
        expected = window.score_window_block(host, host, upper=upper)
        found = window.score_window_block(device, device, upper=upper, chunk_bytes=5000)
        iu = np.triu_indices(14, 1) if upper else np.nonzero(np.ones((14, 14), bool))
        np.testing.assert_allclose(found[0][iu], expected[0][iu], rtol=0, atol=1e-13)
        assert (found[1][iu] == expected[1][iu]).all() and (found[2][iu] == expected[2][iu]).all()
