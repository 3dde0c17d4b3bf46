"""The all-against-all grid (plan, execution, Zarr store, resume, top-k) and the matrix sources."""

from __future__ import annotations

import glob
import json
import os
import uuid
from pathlib import Path

import dask
import fsspec
import numpy as np
import pytest
import zarr

from flows import grid_executor
from flows.compare import all_pairs
from flows.matrices import load_matrices, synthetic_matrices
from pipelines.compare import compare, cupy_or_none
from pipelines.errors import InputError
from pipelines.grid import plan_grid

# zarr lists the published store's _SUCCESS file as a foreign object when it lists members
pytestmark = pytest.mark.filterwarnings("ignore:Object at _SUCCESS is not recognized")


def make_mats(seed: int = 0, count: int = 11, rows: int = 4, lo: int = 2, hi: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((rows, int(n))) for n in rng.integers(lo, hi + 1, count)]
    mats[3] = np.zeros((rows, 5))  # a zero matrix
    mats[5] = -np.abs(mats[5]) - 0.1  # negative against the positive one below: all-negative pair
    mats[6] = np.abs(mats[6]) + 0.1
    return mats


def pair_loop(mats):
    """The per-pair reference: compare() on every pair i < j, mirrored; diagonal 1/0."""
    n = len(mats)
    score, lag = np.zeros((n, n)), np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        score[i, i] = 1.0 if np.any(mats[i]) else 0.0
        for j in range(i + 1, n):
            score[i, j], lag[i, j] = compare(mats[i], mats[j])
            score[j, i], lag[j, i] = score[i, j], -lag[i, j]
    return score, lag


def read_store(path) -> dict:
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][...] for name in group.array_keys()} | {"attrs": dict(group.attrs)}


def staging(out: Path) -> Path:
    """The one staged (unpublished) store of ``out``: ``<out>.tmp-<fingerprint>``."""
    (found,) = glob.glob(f"{out}.tmp-*")
    return Path(found)


def markers(out: Path) -> list[str]:
    return sorted(p for p in os.listdir(staging(out) / "_tiles") if p != "fingerprint")


def failing(monkeypatch, *tiles: str) -> None:
    """Fault injection: the tasks of these tiles raise."""
    monkeypatch.setattr(grid_executor, "FAIL_TILES", frozenset(tiles))


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, tile", [(1, 1), (5, 2), (10, 3), (7, 7), (4, 9), (12, 4)])
def test_plan_covers_the_upper_triangle_once(n, tile):
    seen = np.zeros((n, n), dtype=int)
    for t in plan_grid(n, tile):
        assert t.bi <= t.bj and t.i1 - t.i0 <= tile and t.j1 - t.j0 <= tile
        rows, cols = np.meshgrid(np.arange(t.i0, t.i1), np.arange(t.j0, t.j1), indexing="ij")
        keep = rows < cols
        seen[rows[keep], cols[keep]] += 1
    assert (seen[np.triu_indices(n, 1)] == 1).all() and seen[np.tril_indices(n)].sum() == 0
    assert sum(t.pairs for t in plan_grid(n, tile)) == n * (n - 1) // 2


@pytest.mark.parametrize("tile", [1, 3, 4, 11, 50])
def test_grid_equals_the_pair_loop(tile):
    mats = make_mats()
    ref_score, ref_lag = pair_loop(mats)
    res = all_pairs(mats, tile=tile, device="cpu", dtype="float64")
    assert res.score.dtype == np.float64 and res.lag.dtype == np.int32
    np.testing.assert_allclose(res.score, ref_score, rtol=1e-12, atol=1e-15)
    assert (res.lag == ref_lag).all()
    assert res.score[5, 6] < 0  # the all-negative pair keeps its negative score
    f32 = all_pairs(mats, tile=tile, device="cpu")
    assert f32.score.dtype == np.float32
    np.testing.assert_allclose(f32.score, ref_score, rtol=1e-5, atol=1e-9)
    assert (f32.lag == ref_lag).all()
    assert res.tiles == res.computed_tiles == len(plan_grid(len(mats), tile))
    assert res.pairs == res.computed_pairs == 55 and res.device == "cpu"
    assert "n=11" in repr(res) and "pairs/s" in repr(res)


def test_store_content(tmp_path):
    mats = make_mats(1)
    names = [f"mat-{k:02d}" for k in range(len(mats))]
    out = tmp_path / "grid.zarr"
    res = all_pairs(mats, names=names, tile=4, device="cpu", out=out)
    assert res.path == str(out)
    assert sorted(os.listdir(tmp_path)) == ["grid.zarr"]  # no .partial, nothing aside
    assert (out / "_SUCCESS").exists() and not (out / "_tiles").exists()
    group = zarr.open_group(str(out), mode="r")
    score, lag = group["score"], group["lag"]
    assert score.shape == lag.shape == (11, 11) and score.chunks == lag.chunks == (4, 4)
    assert score.dtype == np.float32 and lag.dtype == np.int32
    assert group.attrs["names"] == names and group.attrs["n"] == 11 and group.attrs["tile"] == 4
    s, lg = score[...], lag[...]
    assert (s == s.T).all() and (lg == -lg.T).all()
    assert (np.diag(s) == [0 if k == 3 else 1 for k in range(11)]).all() and (np.diag(lg) == 0).all()
    assert (s[3] == 0).all() and (lg[3] == 0).all()
    ref_score, ref_lag = pair_loop(mats)
    np.testing.assert_allclose(s, ref_score, rtol=1e-5, atol=1e-9)
    assert (lg == ref_lag).all()
    np.testing.assert_array_equal(res.score, s)
    f64 = all_pairs(mats, tile=4, device="cpu", out=tmp_path / "f64.zarr", dtype="float64")
    assert zarr.open_group(f64.path, mode="r")["score"].dtype == np.float64


def test_resume_after_a_failed_tile_computes_only_the_missing_tiles(tmp_path, monkeypatch):
    mats = make_mats(2, count=13)
    whole = read_store(all_pairs(mats, tile=3, device="cpu", out=tmp_path / "whole.zarr").path)
    out = tmp_path / "resumed.zarr"
    failing(monkeypatch, "1_3")
    with dask.config.set(scheduler="sync"), pytest.raises(RuntimeError, match="injected failure in tile 1_3"):
        all_pairs(mats, tile=3, device="cpu", out=out)
    monkeypatch.undo()
    assert not out.exists() and staging(out).name.startswith("resumed.zarr.tmp-")
    finished = markers(out)
    total = len(plan_grid(13, 3))
    assert 0 < len(finished) < total and "1_3.done" not in finished
    # other inputs or other options into the same partial store: refused, nothing touched
    changed = [m.copy() for m in mats]
    changed[0][0, 0] += 1.0
    with pytest.raises(InputError, match="output.path: .*resumed.zarr.tmp-.*other inputs or options"):
        all_pairs(changed, tile=3, device="cpu", out=out)
    with pytest.raises(InputError, match="other inputs or options"):
        all_pairs(mats, tile=3, device="cpu", out=out, normalize="zscore")
    assert markers(out) == finished
    assert len(glob.glob(f"{out}.tmp-*")) == 1  # the refused runs staged nothing
    res = all_pairs(mats, tile=3, device="cpu", out=out)
    assert res.computed_tiles == total - len(finished) and res.tiles == total
    resumed = read_store(out)
    assert resumed.keys() == whole.keys()
    for key in ("score", "lag"):
        np.testing.assert_array_equal(resumed[key], whole[key])
    assert resumed["attrs"] == whole["attrs"]
    assert sorted(os.listdir(tmp_path)) == ["resumed.zarr", "whole.zarr"]  # the staging is gone


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    mats = make_mats(3, count=8)
    out = tmp_path / "g.zarr"
    all_pairs(mats, tile=4, device="cpu", out=out)
    (out / "marker.txt").write_text("old")
    with pytest.raises(InputError, match="already exists"):
        all_pairs(mats, tile=4, device="cpu", out=out)
    assert (out / "marker.txt").exists()
    res = all_pairs(mats[:7], tile=4, device="cpu", out=out, overwrite=True)
    assert res.n == 7 and not (out / "marker.txt").exists() and (out / "_SUCCESS").exists()
    assert sorted(os.listdir(tmp_path)) == ["g.zarr"]


def expected_top_k(score: np.ndarray, lag: np.ndarray, k: int):
    s = score.astype(np.float64).copy()
    np.fill_diagonal(s, -np.inf)
    cols = np.arange(len(s))
    order = np.array([np.lexsort((cols, -row))[:k] for row in s])
    return order, np.take_along_axis(score, order, 1), np.take_along_axis(lag, order, 1)


@pytest.mark.parametrize("tile, k", [(2, 3), (4, 1), (5, 10), (20, 4)])
def test_top_k_equals_the_argsort_of_the_full_matrix(tile, k):
    mats = make_mats(4)
    full = all_pairs(mats, tile=tile, device="cpu")
    index, score, lag = expected_top_k(full.score, full.lag, k)
    top = all_pairs(mats, tile=tile, device="cpu", top_k=k)
    assert top.index.shape == (11, k) and top.top_k == k
    np.testing.assert_array_equal(top.index, index)
    np.testing.assert_array_equal(top.score, score)
    np.testing.assert_array_equal(top.lag, lag)
    assert not (top.index == np.arange(11)[:, None]).any()  # self excluded


def test_top_k_store_and_resume(tmp_path, monkeypatch):
    mats = make_mats(5, count=12)
    memory = all_pairs(mats, tile=3, device="cpu", top_k=4)
    out = tmp_path / "top.zarr"
    failing(monkeypatch, "2_3")
    with dask.config.set(scheduler="sync"), pytest.raises(RuntimeError, match="injected"):
        all_pairs(mats, tile=3, device="cpu", top_k=4, out=out)
    monkeypatch.undo()
    finished = markers(out)
    res = all_pairs(mats, tile=3, device="cpu", top_k=4, out=out)
    assert res.computed_tiles == res.tiles - len(finished)
    store = read_store(out)
    assert set(store) == {"index", "score", "lag", "attrs"} and store["attrs"]["top_k"] == 4
    assert zarr.open_group(str(out), mode="r")["index"].chunks == (3, 4)
    for key in ("index", "score", "lag"):
        np.testing.assert_array_equal(store[key], memory[key])
    with pytest.raises(InputError, match="compare.top_k: 12 must be between 1 and n - 1 = 11"):
        all_pairs(mats, top_k=12, device="cpu")


def test_on_a_local_cluster(local_client, tmp_path):
    mats = make_mats(6, count=10)
    local = all_pairs(mats, tile=3, device="cpu", dtype="float64")
    res = all_pairs(mats, tile=3, device="cpu", dtype="float64", out=tmp_path / "d.zarr", client=local_client)
    store = read_store(res.path)
    np.testing.assert_allclose(store["score"], local.score, rtol=1e-12, atol=1e-15)
    assert (store["lag"] == local.lag).all()
    top = all_pairs(mats, tile=3, device="cpu", top_k=3, client=local_client)
    np.testing.assert_array_equal(top.index, all_pairs(mats, tile=3, device="cpu", top_k=3).index)
    with pytest.raises(InputError, match="compare.device: cuda: no worker of the cluster declares a GPU"):
        all_pairs(mats, device="cuda", client=local_client)
    assert all_pairs(mats[:3], device="auto", client=local_client).device == "cpu"


def test_grid_input_checks(tmp_path):
    mats = make_mats(7, count=8)[:4]
    if cupy_or_none() is None:
        with pytest.raises(InputError, match="compare.device: cuda needs CuPy"):
            all_pairs(mats, device="cuda")
    with pytest.raises(InputError, match="matrix '2': 5 rows"):
        all_pairs([*mats[:2], np.ones((5, 3)), mats[3]], device="cpu")
    with pytest.raises(InputError, match="matrix 'b': contains NaN"):
        all_pairs({"a": mats[0], "b": np.full((4, 3), np.nan)}, device="cpu")
    with pytest.raises(InputError, match="names"):
        all_pairs(mats, names=["x"], device="cpu")
    with pytest.raises(InputError, match="compare.tile: 0"):
        all_pairs(mats, tile=0, device="cpu")
    with pytest.raises(InputError, match="compare.normalize: 'l2'"):
        all_pairs(mats, normalize="l2", device="cpu")
    with pytest.raises(InputError, match="compare.dtype: 'float16'"):
        all_pairs(mats, dtype="float16", device="cpu")
    with pytest.raises(InputError, match="compare.device: 'tpu'"):
        all_pairs(mats, device="tpu")
    (tmp_path / "afile").write_text("")
    with pytest.raises(InputError, match=f"^output.path: {tmp_path}/afile/g.zarr: {tmp_path}/afile is a file"):
        all_pairs(mats, device="cpu", out=tmp_path / "afile/g.zarr")
    url = f"memory://grid-{uuid.uuid4().hex}/g.zarr"  # any fsspec URL (tests/test_s3_compare.py: S3)
    in_memory, on_url = all_pairs(mats, device="cpu", tile=2), all_pairs(mats, device="cpu", tile=2, out=url)
    np.testing.assert_array_equal(on_url.score, in_memory.score)
    assert fsspec.filesystem("memory").exists(url[len("memory://"):] + "/_SUCCESS")
    with pytest.raises(InputError, match="none given"):
        all_pairs([], device="cpu")
    zs = all_pairs(mats, device="cpu", normalize="zscore", dtype="float64")
    assert zs.score[0, 1] == pytest.approx(compare(mats[0], mats[1], normalize="zscore")[0], abs=1e-12)


# ----------------------------------------------------------------------------------------------
# matrix sources
def test_sources_npy_npz_zarr_synthetic(tmp_path):
    rng = np.random.default_rng(8)
    data = {name: rng.standard_normal((3, n)) for name, n in (("b", 4), ("a", 6), ("c", 2))}
    folder = tmp_path / "npy"
    folder.mkdir()
    for name, x in data.items():
        np.save(folder / f"{name}.npy", x.astype(np.float32) if name == "c" else x)
    (folder / "notes.txt").write_text("ignored")
    np.savez(tmp_path / "m.npz", **data)
    group = zarr.open_group(str(tmp_path / "m.zarr"), mode="w")
    for name, x in data.items():
        group.create_array(name, data=x)
    group.create_group("sub")  # sub-groups are not matrices
    for source in (folder, {"format": "npz", "path": str(tmp_path / "m.npz")}, str(tmp_path / "m.zarr")):
        names, arrays = load_matrices(source)
        assert names == ["a", "b", "c"]
        for name, x in zip(names, arrays):
            np.testing.assert_allclose(x, data[name], rtol=1e-6)
            assert x.dtype == np.float64
    from flows.config import NpzInput, SyntheticMatrices

    assert load_matrices(NpzInput(format="npz", path=str(tmp_path / "m.npz"))).names == ["a", "b", "c"]
    syn = load_matrices(SyntheticMatrices(format="synthetic", n=12, rows=3, min_len=5, max_len=9, seed=3))
    again = synthetic_matrices(12, 3, 5, 9, seed=3)
    assert syn.names == again.names and len(syn.names) == 12 and syn.names[0] == "m00"
    assert all((x == y).all() for x, y in zip(syn.arrays, again.arrays))
    assert all(x.shape[0] == 3 and 5 <= x.shape[1] <= 9 for x in syn.arrays)
    assert all_pairs(syn, tile=5, device="cpu").names == syn.names


def _bad_npy(folder: Path, name: str, value) -> None:
    np.save(folder / "a_good.npy", np.ones((2, 3)))
    if isinstance(value, np.ndarray) and value.dtype == object:
        np.save(folder / name, value, allow_pickle=True)
    elif value is None:
        (folder / name).write_bytes(b"not a numpy file")
    else:
        np.save(folder / name, value)


@pytest.mark.parametrize(
    "value, match",
    [
        (np.ones((3, 3)), "3 rows, expected 2"),
        (np.array([[1.0, np.nan]] * 2), "NaN or inf"),
        (np.array([[1.0, np.inf]] * 2), "NaN or inf"),
        (np.ones((2, 0)), "fewer than 1 column"),
        (np.ones(3), "not 2-D"),
        (np.ones((2, 2, 2)), "not 2-D"),
        (np.array([["x", "y"]] * 2), "not numeric"),
        (np.array([[{"a": 1}, None]] * 2, dtype=object), "pickled"),
        (None, "not a readable .npy"),
    ],
)
def test_npy_source_errors_name_the_file(tmp_path, value, match):
    _bad_npy(tmp_path, "b_bad.npy", value)
    with pytest.raises(InputError, match=match) as info:
        load_matrices(tmp_path)
    assert "b_bad.npy" in str(info.value) and "\n" not in str(info.value)


def test_npz_and_zarr_errors_name_the_array(tmp_path):
    np.savez(tmp_path / "rows.npz", a=np.ones((2, 3)), b=np.ones((3, 3)))
    with pytest.raises(InputError, match=r"rows\.npz:b: 3 rows"):
        load_matrices(tmp_path / "rows.npz")
    np.savez(tmp_path / "pickled.npz", a=np.ones((2, 3)), b=np.array([None, 1], dtype=object))
    with pytest.raises(InputError, match=r"pickled\.npz:b: a pickled"):
        load_matrices(tmp_path / "pickled.npz")
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(InputError, match="no arrays"):
        load_matrices(tmp_path / "empty.npz")
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", data=np.ones((2, 3)))
    group.create_array("z", data=np.ones((2, 2, 2)))
    with pytest.raises(InputError, match=r"g\.zarr/z: not 2-D"):
        load_matrices(tmp_path / "g.zarr")
    group.create_array("b", data=np.array([[np.nan, 1.0], [1.0, 1.0]]))
    with pytest.raises(InputError, match=r"g\.zarr/b: contains NaN"):
        load_matrices(tmp_path / "g.zarr")


def test_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .npy files"):
        load_matrices(tmp_path / "empty")
    with pytest.raises(InputError, match="no such"):
        load_matrices({"format": "npz", "path": str(tmp_path / "missing.npz")})
    with pytest.raises(InputError, match="not a folder"):
        load_matrices(tmp_path / "missing")
    with pytest.raises(InputError, match="not a Zarr group"):
        load_matrices({"format": "zarr", "path": str(tmp_path / "missing.zarr")})
    with pytest.raises(InputError, match="format"):
        load_matrices({"format": "hdf5", "path": "x"})
    with pytest.raises(InputError, match="max_len"):
        load_matrices({"format": "synthetic", "min_len": 9, "max_len": 3})
    np.save(tmp_path / "single.npy", np.ones((2, 2)))
    with pytest.raises(InputError):
        load_matrices({"format": "npz", "path": str(tmp_path / "single.npy")})
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps({}))
    with pytest.raises(InputError, match="not a folder"):
        load_matrices(bad)


def test_grid_device_path_on_numpy(monkeypatch, tmp_path):
    """device=cuda through the grid, with NumPy standing in for CuPy (CI has no GPU)."""
    from pipelines import _xp
    from pipelines import compare as cmp

    class NumpyAsDevice:  # NumPy's functions, but not numpy: the kernel's device branch
        def __getattr__(self, name):
            return getattr(np, name)

    proxy = NumpyAsDevice()
    monkeypatch.setattr(cmp, "array_module", lambda device: proxy if device == "cuda" else np)
    monkeypatch.setattr(_xp, "cupy_or_none", lambda: proxy)
    mats = make_mats(11, count=9)
    res = all_pairs(mats, tile=4, device="auto", dtype="float64", out=tmp_path / "g.zarr")
    assert res.device == "cuda"
    ref = all_pairs(mats, tile=4, device="cpu", dtype="float64")
    np.testing.assert_allclose(res.score, ref.score, atol=1e-13)
    assert (res.lag == ref.lag).all()
