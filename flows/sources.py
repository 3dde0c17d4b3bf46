"""Table inputs: an ``input:`` block becomes one :class:`TableSource`, its files listed once.

The same file list is read (a lazy Dask DataFrame) and fingerprinted (to refuse merging the same
input into a summary state twice), so a file the reader skips (hidden: a name starting with ``.``
or ``_``; another suffix) never changes the fingerprint. Sources fail early, with one line naming
the config key and the file or column, when an input matches no files, lacks a column or has a
time column that is not a time. Row order and fingerprints: ``docs/semantics.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd

from flows.config import CsvInput, ParquetInput, SyntheticTicks
from pipelines.errors import InputError, first_line

TableInputConfig = ParquetInput | CsvInput | SyntheticTicks


@dataclass(frozen=True)
class TableSource:
    """An ``input:`` block and the files it names (none for synthetic input), listed once.

    ``stamps`` holds, per file, what the listing saw of it (size, modification time, ETag): the
    fingerprint hashes it, and :meth:`changed_file` compares it with the files as they are now.

    Examples
    --------
    >>> source = TableSource.from_config(SyntheticTicks(format="synthetic", rows=10, npartitions=2))
    >>> source.files, source.frame().npartitions, source.fingerprint()["path"]
    ((), 2, 'synthetic')
    """

    config: TableInputConfig
    files: tuple[str, ...] = ()
    stamps: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_config(cls, config: TableInputConfig) -> TableSource:
        """List the input's files (the preflight check: no files is an error naming ``input.path``)."""
        if config.format == "synthetic":
            return cls(config)
        listed = list_file_infos(config.path, config.storage_options, f".{config.format}")
        return cls(config, tuple(listed), tuple(_stamp(info) for info in listed.values()))

    def frame(self) -> dd.DataFrame:
        """The lazy DataFrame of the listed files (files in sorted path order, rows in file order)."""
        config = self.config
        if config.format == "parquet":
            df = read_parquet(list(self.files), config)
        elif config.format == "csv":
            df = read_csv(list(self.files), config)
        else:
            df = synthetic_ticks(config)
        return with_time(df, config)

    def fingerprint(self) -> dict[str, str]:
        """``{"path", "fingerprint"}``: the input as written, and a hash of the listed files'
        names, sizes and modification times (of the settings, for synthetic input)."""
        config = self.config
        if config.format == "synthetic":
            return {"path": "synthetic", "fingerprint": _digest(config.model_dump(mode="json"))}
        entries = [(s["path"], s["size"], s["mtime"]) for s in self.stamps]
        paths = [config.path] if isinstance(config.path, str) else config.path
        return {"path": ",".join(paths), "fingerprint": _digest(entries)}

    def estimated_bytes(self) -> int | None:
        """About how many bytes the input takes in memory, or None when unknown.

        Parquet: the row groups' uncompressed size from the files' footers (the selected
        ``input.columns`` only, when given); CSV: the files' size; synthetic: rows x
        :func:`row_bytes` of its columns. A guide for the memory policy, not a measure:
        dictionary-encoded columns take more room in memory than in the file.

        Examples
        --------
        >>> TableSource.from_config(SyntheticTicks(format="synthetic", rows=1000)).estimated_bytes()
        40000
        """
        config = self.config
        if config.format == "synthetic":
            return config.rows * row_bytes(_tick_partition(config, 0, 0).dtypes)
        if config.format == "csv":
            sizes = [stamp["size"] for stamp in self.stamps]
            return None if None in sizes else sum(sizes)
        return parquet_bytes(self.files, config.storage_options, config.columns)

    def changed_file(self) -> str | None:
        """The first listed file that is gone or changed (size, mtime or ETag) since it was
        listed, or None: a run checks this after reading, before it publishes or commits."""
        if self.config.format == "synthetic":
            return None
        options = self.config.storage_options
        for name, before in zip(self.files, self.stamps):
            fs, path = fsspec.core.url_to_fs(name, **options)
            fs.invalidate_cache(path)  # ask the store, not the listing cached when planning
            try:
                now = _stamp(fs.info(path), path)
            except FileNotFoundError:
                return name
            if not _same_version(before, now):
                return name
        return None


def _same_version(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Same size and ETag where the store has them (object stores: listing and HEAD give their
    times at different precisions), else same size and modification time."""
    if before["size"] != now["size"]:
        return False
    if before["etag"] and now["etag"]:
        return before["etag"] == now["etag"]
    return before["mtime"] == now["mtime"]


def _stamp(info: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """What identifies a version of a file: its path, size, modification time (the fields the
    fingerprint has always hashed) and ETag (object stores)."""
    return {
        "path": path or info["name"], "size": info.get("size"),
        "mtime": str(info.get("mtime", info.get("LastModified", ""))),
        "etag": str(info.get("ETag", info.get("etag", ""))),
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def list_files(path: str | list[str], storage_options: dict[str, Any], suffix: str) -> list[str]:
    """Files an input names, in sorted order; folders expand to their not hidden ``*suffix`` files."""
    return list(list_file_infos(path, storage_options, suffix))


def list_file_infos(path: str | list[str], storage_options: dict[str, Any], suffix: str) -> dict[str, dict[str, Any]]:
    """:func:`list_files` with each file's fsspec info (size, mtime or ETag...), from the listing."""
    found: dict[str, dict[str, Any]] = {}
    for item in [path] if isinstance(path, str) else path:
        fs, _, paths = fsspec.get_fs_token_paths(item, storage_options=storage_options)
        listed: dict[str, dict[str, Any]] = {}
        for p in paths:
            if fs.isdir(p):
                infos = fs.find(p, detail=True)
                listed |= {f: i for f, i in infos.items() if f.endswith(suffix) and not _hidden(f, p)}
            elif fs.exists(p):
                listed[p] = fs.info(p)
        if not paths or not listed:
            raise InputError(f"input.path: {item}: matches no {suffix} files")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        for name, info in listed.items():
            info = {**info, "name": name}  # the stripped path: what the fingerprint hashes
            found[name if protocol in ("file", "local") else fs.unstrip_protocol(name)] = info
    return dict(sorted(found.items()))


def _hidden(path: str, root: str) -> bool:
    rel = os.path.relpath(path, root)
    return any(part.startswith((".", "_")) for part in rel.split(os.sep))


def read_parquet(files: list[str], config: ParquetInput) -> dd.DataFrame:
    """Parquet ``files`` as a lazy DataFrame (rows in file order).

    A file's row groups are split into partitions of about ``input.blocksize`` (uncompressed)
    each; ``blocksize: null`` reads one partition per file.
    """
    try:
        df = dd.read_parquet(
            files,
            columns=config.columns,
            storage_options=config.storage_options or None,
            index=False,
            calculate_divisions=False,
            split_row_groups="adaptive" if config.blocksize is not None else False,
            blocksize=config.blocksize,
        )
    except Exception as error:  # pyarrow raises several types for corrupt files
        culprit = _corrupt_parquet(files) or config.path
        raise InputError(f"input.path: {culprit}: cannot read as Parquet ({first_line(error)})") from None
    return df


def _corrupt_parquet(files: list[str]) -> str | None:
    import pyarrow.parquet as pq

    for f in files:
        try:
            with fsspec.open(f, "rb") as handle:
                pq.read_metadata(handle)
        except Exception:
            return f
    return None


def parquet_bytes(files: list[str], storage_options: dict[str, Any], columns: list[str] | None = None) -> int | None:
    """The uncompressed bytes of the Parquet files' row groups, from their footers (read through
    fsspec, a few at a time), only of ``columns`` when given; None when a footer cannot be read."""
    import pyarrow.parquet as pq

    def footer_bytes(name: str) -> int:
        with fsspec.open(name, "rb", **storage_options) as handle:
            meta = pq.read_metadata(handle)
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        if columns is None:
            return sum(group.total_byte_size for group in groups)
        return sum(chunk.total_uncompressed_size for group in groups
                   for chunk in map(group.column, range(group.num_columns))
                   if chunk.path_in_schema.split(".")[0] in columns)

    try:
        with ThreadPoolExecutor(max(1, min(16, len(files)))) as pool:
            return sum(pool.map(footer_bytes, files))
    except Exception:  # noqa: BLE001 -- pyarrow and the stores raise many types; reading reports it
        return None


#: Bytes per row assumed for a column of no fixed width (text, objects): offsets plus a short value.
VARIABLE_WIDTH_BYTES = 16


def row_bytes(dtypes: pd.Series) -> int:
    """The estimated in-memory bytes of one row of columns of these dtypes: a fixed-width column
    its item size, any other :data:`VARIABLE_WIDTH_BYTES`.

    Examples
    --------
    >>> frame = pd.DataFrame({"t": pd.to_datetime([]), "x": pd.Series([], dtype="float32"),
    ...                       "n": pd.Series([], dtype="Int16"), "s": pd.Series([], dtype="str")})
    >>> row_bytes(frame.dtypes)
    30
    """
    return sum(dtype.itemsize if dtype.kind in "biufcmM" else VARIABLE_WIDTH_BYTES for dtype in dtypes)


def read_csv(files: list[str], config: CsvInput) -> dd.DataFrame:
    """CSV ``files`` as a lazy DataFrame."""
    try:
        df = dd.read_csv(files, blocksize=config.blocksize, storage_options=config.storage_options or None)
    except Exception as error:
        raise InputError(f"input.path: {config.path}: cannot read as CSV ({first_line(error)})") from None
    return df


def _parse_time(part: pd.DataFrame, column: str) -> pd.DataFrame:
    try:
        values = pd.to_datetime(part[column])
    except (ValueError, TypeError) as error:
        raise InputError(f"input.time: column {column!r}: not a time ({first_line(error)})") from None
    return part.assign(**{column: values})


def with_time(df: dd.DataFrame, config: ParquetInput | CsvInput | SyntheticTicks) -> dd.DataFrame:
    """Check the time column exists and is a time (parsing text lazily); sort if asked."""
    column = config.time
    if column is None:
        return df
    if column not in df.columns:
        raise InputError(f"input.time: no column {column!r} (columns: {', '.join(map(str, df.columns))})")
    dtype = df.dtypes[column]
    if not pd.api.types.is_datetime64_any_dtype(dtype):
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise InputError(f"input.time: column {column!r} is {dtype}, not a time")
        meta = df._meta.assign(**{column: pd.Series([], dtype="datetime64[ns]")})
        df = df.map_partitions(_parse_time, column, meta=meta)
    if config.sort:
        df = df.sort_values(column)
    return df


def synthetic_ticks(config: SyntheticTicks) -> dd.DataFrame:
    """Seeded tick-like data as a lazy DataFrame: no files needed.

    ``symbols`` symbols interleaved at irregular times (about one tick per second per symbol),
    runs of consecutive duplicate rows (rate ``duplicate_rate``) and some NaN prices. Each
    partition is generated independently from ``(seed, partition)``; times are globally sorted.

    Examples
    --------
    >>> df = synthetic_ticks(SyntheticTicks(format="synthetic", rows=1000, npartitions=4))
    >>> df.npartitions, list(df.columns)
    (4, ['ts', 'symbol', 'price', 'size'])
    >>> bool(df.compute()["ts"].is_monotonic_increasing)
    True
    """
    sizes = np.diff(np.linspace(0, config.rows, config.npartitions + 1).astype(int))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    args = [(int(n), int(s)) for n, s in zip(sizes, starts)]
    meta = _tick_partition(config, 0, 0)
    return dd.from_map(
        lambda a: _tick_partition(config, *a), args, meta=meta, enforce_metadata=False,
        label="synthetic-ticks",
    )


def _tick_partition(config: SyntheticTicks, n: int, first_row: int) -> pd.DataFrame:
    """Rows ``first_row .. first_row + n`` of the synthetic tick stream."""
    rng = np.random.default_rng([config.seed, first_row])
    seconds_per_row = 1.0 / config.symbols
    offsets = first_row * seconds_per_row + np.sort(rng.uniform(0, n * seconds_per_row, n))
    ts = pd.Timestamp(config.start) + pd.to_timedelta(np.round(offsets * 1e3), unit="ms")
    symbol = np.array([f"S{i:03d}" for i in range(config.symbols)])[rng.integers(0, config.symbols, n)]
    price = 100 + np.round(rng.normal(0, 0.05, n).cumsum(), 2)
    size = rng.integers(1, 10, n) * 100.0
    frame = pd.DataFrame({"ts": ts.astype("datetime64[ns]"), "symbol": symbol, "price": price, "size": size})
    # runs of consecutive duplicates: copy the previous row of the same symbol
    repeat = rng.random(n) < config.duplicate_rate
    if n and repeat.any():
        previous = frame.groupby("symbol", sort=False)[["price", "size"]].shift(1)
        use = repeat & previous["price"].notna().to_numpy()
        frame.loc[use, ["price", "size"]] = previous.loc[use].to_numpy()
    frame.loc[rng.random(n) < config.nan_rate, "price"] = np.nan
    if config.time != "ts" and config.time is not None:
        frame = frame.rename(columns={"ts": config.time})
    return frame
