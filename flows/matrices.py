"""Matrix sources for the compare flow: a folder of ``.npy`` files, one ``.npz``, a Zarr group of
2-D arrays, or ``synthetic`` matrices (seeded).

:func:`load_matrices` returns ``MatrixSet(names, arrays)``: names in order (sorted file / key /
array names), the matrices as float64 NumPy arrays, all validated. A bad matrix is an
:class:`~pipelines.errors.InputError` whose one-line message names the file or array: a row count
other than the first matrix's, NaN or inf, fewer than 1 column, not 2-D, not numeric, a pickled
(object) array -- ``np.load`` is never allowed to unpickle.

Eager on purpose: every value is needed before the grid starts (validation, the fingerprint that
guards resumable output, the spectra), errors must come before anything is written, and the input
(N x r x len, 160 MB for 5,000 x 20 x ~200 float64) is small beside the N x N result.

Examples
--------
>>> ms = load_matrices({"format": "synthetic", "n": 3, "rows": 2, "min_len": 4, "max_len": 6})
>>> ms.names, [a.shape[0] for a in ms.arrays]
(['m0', 'm1', 'm2'], [2, 2, 2])
>>> names, arrays = ms    # unpacks like a tuple
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import fsspec
import numpy as np

from pipelines.compare import check_matrix
from pipelines.errors import InputError, first_line


class MatrixSet(NamedTuple):
    """Validated matrices: unique names in order, float64 2-D arrays with one row count.

    Built only here (:func:`load_matrices`, :func:`as_matrix_set`, :func:`synthetic_matrices`);
    whoever receives one uses its arrays as they are, without checking them again.
    """

    names: list[str]
    arrays: list[np.ndarray]


def as_matrix_set(matrices: Any, names: Sequence[str] | None = None) -> MatrixSet:
    """A :class:`MatrixSet` from what a Python caller has: a set already, a mapping name -> array,
    or a sequence of arrays (named by ``names``, default ``"0", "1", ...``). Validated once.

    >>> as_matrix_set([np.ones((2, 3)), np.zeros((2, 1))]).names
    ['0', '1']
    >>> as_matrix_set({"a": np.ones((2, 3)), "b": np.ones((3, 3))})
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: matrix 'b': 3 rows, expected 2 like the others
    """
    if isinstance(matrices, MatrixSet):
        if names is not None:
            raise InputError("names: give names or a matrix set, not both")
        return matrices
    if isinstance(matrices, Mapping):
        if names is not None:
            raise InputError("names: give names or a mapping of matrices, not both")
        names, arrays = [str(k) for k in matrices], list(matrices.values())
    else:
        arrays = list(matrices)
        names = [str(k) for k in range(len(arrays))] if names is None else [str(x) for x in names]
    if len(names) != len(arrays):
        raise InputError(f"names: {len(names)} names for {len(arrays)} matrices")
    if len(set(names)) != len(names):
        raise InputError("names: not unique")
    if not arrays:
        raise InputError("matrices: none given")
    return MatrixSet(names, _validate([f"matrix {name!r}" for name in names], arrays))


def _spec(source: Any) -> dict[str, Any]:
    """A source as a dict with ``format``: config models, dicts and plain paths."""
    if hasattr(source, "model_dump"):  # a pydantic input config (flows.config)
        return source.model_dump()
    if isinstance(source, Mapping):
        if "format" not in source:
            raise InputError("input.format: field required (npy, npz, zarr, synthetic)")
        return dict(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.suffix == ".npz":
            return {"format": "npz", "path": str(path)}
        if (path / "zarr.json").exists() or (path / ".zgroup").exists():
            return {"format": "zarr", "path": str(path)}
        if path.is_dir():
            return {"format": "npy", "path": str(path)}
        raise InputError(f"input.path: {path}: not a folder of .npy files, an .npz file or a Zarr group")
    raise InputError(f"input: {source!r} is not a matrix source")


def load_matrices(source: Any) -> MatrixSet:
    """Load and validate the matrices of ``source`` (see the module docstring)."""
    spec = _spec(source)
    fmt = spec.get("format")
    if fmt == "synthetic":
        keys = ("n", "rows", "min_len", "max_len", "seed")
        return synthetic_matrices(**{k: spec[k] for k in keys if k in spec})
    names, labels, arrays = _reader(fmt)(spec, header_only=False)
    return MatrixSet(names, _validate(labels, arrays))


def matrix_shapes(source: Any) -> tuple[list[str], list[tuple[int, ...]]]:
    """``(names, shapes)`` of the matrices of ``source`` from their metadata only (``.npy``
    headers, Zarr array metadata; no values read): what a dry run shows. Checks what metadata
    tells (numeric, 2-D, at least one column, one row count, no pickles).

    >>> matrix_shapes({"format": "synthetic", "n": 2, "rows": 3, "min_len": 4, "max_len": 4})
    (['m0', 'm1'], [(3, 4), (3, 4)])
    """
    spec = _spec(source)
    if spec.get("format") == "synthetic":
        ms = load_matrices(spec)
        return ms.names, [a.shape for a in ms.arrays]
    names, labels, headers = _reader(spec.get("format"))(spec, header_only=True)
    rows = None
    for label, (shape, dtype) in zip(labels, headers, strict=True):
        if np.dtype(dtype).kind not in "biuf":
            raise InputError(f"{label}: not numeric (dtype {dtype})")
        if len(shape) != 2:
            raise InputError(f"{label}: not 2-D (shape {shape})")
        if shape[1] < 1:
            raise InputError(f"{label}: fewer than 1 column (shape {shape})")
        if shape[0] < 1:
            raise InputError(f"{label}: no rows (shape {shape})")
        if rows is not None and shape[0] != rows:
            raise InputError(f"{label}: {shape[0]} rows, expected {rows} like the others")
        rows = shape[0] if rows is None else rows
    return names, [tuple(int(n) for n in shape) for shape, _ in headers]


def _reader(fmt: Any) -> Any:
    readers = {"npy": _read_npy_folder, "npz": _read_npz, "zarr": _read_zarr}
    if fmt not in readers:
        raise InputError(f"input.format: {fmt!r} is not one of npy, npz, zarr, synthetic")
    return readers[fmt]


def _validate(labels: list[str], arrays: list[Any]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    rows = None
    for label, arr in zip(labels, arrays, strict=True):
        checked = check_matrix(arr, label, rows=rows)
        rows = checked.shape[0] if rows is None else rows
        out.append(checked)
    return out


def _location(spec: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """``(file system, path on it, the path as the user wrote it)`` of ``input.path``."""
    shown = str(spec["path"]).rstrip("/") or "/"
    fs, path = fsspec.core.url_to_fs(shown, **(spec.get("storage_options") or {}))
    return fs, path.rstrip("/") or "/", shown


def _npy_header(handle: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(handle)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    return shape, dtype


def _load_npy(fs: fsspec.AbstractFileSystem, path: str, shown: str, header_only: bool) -> Any:
    try:
        with fs.open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":  # np.load would take it for a pickle (and refuse it)
                raise InputError(f"{shown}: not a readable .npy array (no NumPy header)")
            handle.seek(0)
            return _npy_header(handle) if header_only else np.load(handle, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise InputError(f"{shown}: a pickled (object) array; only numeric arrays are read") from None
        raise InputError(f"{shown}: not a readable .npy array ({first_line(error)})") from None
    except (OSError, EOFError) as error:
        raise InputError(f"{shown}: not a readable .npy array ({first_line(error)})") from None


def _read_npy_folder(spec: dict[str, Any], header_only: bool) -> tuple[list[str], list[str], list[Any]]:
    fs, folder, shown = _location(spec)
    if not fs.isdir(folder):
        raise InputError(f"input.path: {shown}: no such folder")
    files = sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".npy") and fs.isfile(p))
    if not files:
        raise InputError(f"input.path: {shown}: no .npy files")
    labels = [f"{shown}/{posixpath.basename(p)}" for p in files]  # messages name the files
    arrays = [_load_npy(fs, p, label, header_only) for p, label in zip(files, labels)]
    return [posixpath.basename(p)[: -len(".npy")] for p in files], labels, arrays


def _read_npz(spec: dict[str, Any], header_only: bool) -> tuple[list[str], list[str], list[Any]]:
    fs, path, shown = _location(spec)
    if not fs.isfile(path):
        raise InputError(f"input.path: {shown}: no such file")
    with fs.open(path, "rb") as handle:
        try:
            archive = np.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise InputError(f"{shown}: not a readable .npz archive ({first_line(error)})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise InputError(f"{shown}: not an .npz archive (a single array)")
        with archive:
            names = sorted(archive.files)
            if not names:
                raise InputError(f"{shown}: no arrays")
            arrays = [_npz_member(archive, name, shown, header_only) for name in names]
    return names, [f"{shown}:{name}" for name in names], arrays


def _npz_member(archive: Any, name: str, shown: str, header_only: bool) -> Any:
    try:
        if header_only:
            with archive.zip.open(f"{name}.npy") as member:
                return _npy_header(member)
        return archive[name]
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise InputError(f"{shown}:{name}: a pickled (object) array; only numeric arrays are read") from None
        raise InputError(f"{shown}:{name}: not readable ({first_line(error)})") from None


def open_zarr_group(url: str, storage_options: dict[str, Any] | None, mode: str) -> Any:
    """``zarr.open_group`` of a local path or an fsspec URL (zarr's fsspec store, with
    ``storage_options``)."""
    import zarr  # noqa: PLC0415

    options = {"storage_options": storage_options or {}} if "://" in url else {}
    return zarr.open_group(url, mode=mode, **options)


def _read_zarr(spec: dict[str, Any], header_only: bool) -> tuple[list[str], list[str], list[Any]]:
    shown = str(spec["path"]).rstrip("/")
    try:
        group = open_zarr_group(shown, spec.get("storage_options"), mode="r")
    except Exception as error:  # FileNotFoundError, GroupNotFoundError, bad metadata
        raise InputError(f"input.path: {shown}: not a Zarr group ({first_line(error)})") from None
    names = sorted(group.array_keys())
    if not names:
        raise InputError(f"input.path: {shown}: no arrays in the Zarr group")
    arrays = []
    for name in names:
        arr = group[name]
        if np.dtype(arr.dtype).kind not in "biuf":
            raise InputError(f"{shown}/{name}: not numeric (dtype {arr.dtype})")
        arrays.append((arr.shape, np.dtype(arr.dtype)) if header_only else arr[...])
    return names, [f"{shown}/{name}" for name in names], arrays


def synthetic_matrices(
    n: int = 200, rows: int = 20, min_len: int = 150, max_len: int = 250, seed: int = 0
) -> MatrixSet:
    """``n`` seeded matrices ``rows x L``, ``L`` uniform in ``[min_len, max_len]``.

    Each is a window, at a random offset, of one of ``max(1, n // 10)`` random-walk prototypes,
    plus noise: families of similar matrices for the grid (and ``top_k``) to find.

    >>> a = synthetic_matrices(5, 3, 10, 12, seed=1)
    >>> b = synthetic_matrices(5, 3, 10, 12, seed=1)
    >>> all((x == y).all() for x, y in zip(a.arrays, b.arrays)), min(x.shape[1] for x in a.arrays) >= 10
    (True, True)
    """
    n, rows, min_len, max_len = int(n), int(rows), int(min_len), int(max_len)
    if n < 1 or rows < 1 or min_len < 1:
        raise InputError("input.n, input.rows, input.min_len: synthetic sizes must be >= 1")
    if max_len < min_len:
        raise InputError(f"input.max_len: {max_len} < input.min_len {min_len}")
    rng = np.random.default_rng(seed)
    families = max(1, n // 10)
    span = 2 * max_len
    protos = np.cumsum(rng.standard_normal((families, rows, span)), axis=-1)
    protos -= protos.mean(axis=-1, keepdims=True)
    protos /= protos.std(axis=-1, keepdims=True) + 1e-12
    lengths = rng.integers(min_len, max_len + 1, size=n)
    family = rng.integers(0, families, size=n)
    width = len(str(n - 1))
    names, arrays = [], []
    for k in range(n):
        length = int(lengths[k])
        start = int(rng.integers(0, span - length + 1))
        x = protos[family[k], :, start : start + length] + 0.5 * rng.standard_normal((rows, length))
        names.append(f"m{k:0{width}d}")
        arrays.append(x)
    return MatrixSet(names, arrays)  # valid by construction


__all__ = ["MatrixSet", "as_matrix_set", "load_matrices", "matrix_shapes", "open_zarr_group", "synthetic_matrices"]
