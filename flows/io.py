"""Table sources (Parquet, CSV, synthetic ticks) and atomic Parquet / JSON sinks.

Sources return lazy Dask DataFrames and fail early, with one line naming the file or column, when
an input matches no files, lacks a column or has a time column that is not a time.

Sinks never leave half-written output: they write next to the target into
``<target>.tmp-<run id>`` and only :meth:`Publication.publish` moves it into place (an existing
target is renamed aside first and removed only after; ``_SUCCESS`` is written last).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd

from flows.config import CsvInput, OutputConfig, ParquetInput, SyntheticTicks
from pipelines.errors import InputError, first_line

SUCCESS = "_SUCCESS"


# ----------------------------------------------------------------------------------------------
# sources
def expand_paths(path: str | list[str], storage_options: dict[str, Any], suffix: str) -> list[str]:
    """Files an input names, in sorted order; folders expand to their ``*suffix`` files."""
    found: list[str] = []
    for item in [path] if isinstance(path, str) else path:
        fs, _, paths = fsspec.get_fs_token_paths(item, storage_options=storage_options)
        for p in paths:
            if fs.isdir(p):
                found += [f for f in fs.find(p) if f.endswith(suffix) and not _hidden(f, p)]
            elif fs.exists(p):
                found.append(p)
        if not paths or not found:
            raise InputError(f"input.path: {item}: matches no {suffix} files")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol not in ("file", "local"):
            found = [fs.unstrip_protocol(f) for f in found]
    return sorted(found)


def _hidden(path: str, root: str) -> bool:
    rel = os.path.relpath(path, root)
    return any(part.startswith((".", "_")) for part in rel.split(os.sep))


def read_parquet(config: ParquetInput) -> dd.DataFrame:
    """Parquet files as a lazy DataFrame (files in sorted path order, rows in file order)."""
    files = expand_paths(config.path, config.storage_options, ".parquet")
    try:
        df = dd.read_parquet(
            files,
            columns=config.columns,
            storage_options=config.storage_options or None,
            index=False,
            calculate_divisions=False,
        )
    except Exception as error:  # pyarrow raises several types for corrupt files
        culprit = _corrupt_parquet(files) or config.path
        raise InputError(f"input.path: {culprit}: cannot read as Parquet ({first_line(error)})") from None
    return _with_time(df, config)


def _corrupt_parquet(files: list[str]) -> str | None:
    import pyarrow.parquet as pq

    for f in files:
        try:
            with fsspec.open(f, "rb") as handle:
                pq.read_metadata(handle)
        except Exception:
            return f
    return None


def read_csv(config: CsvInput) -> dd.DataFrame:
    """CSV files as a lazy DataFrame (files in sorted path order)."""
    files = expand_paths(config.path, config.storage_options, ".csv")
    try:
        df = dd.read_csv(files, blocksize=config.blocksize, storage_options=config.storage_options or None)
    except Exception as error:
        raise InputError(f"input.path: {config.path}: cannot read as CSV ({first_line(error)})") from None
    return _with_time(df, config)



def _parse_time(part: pd.DataFrame, column: str) -> pd.DataFrame:
    try:
        values = pd.to_datetime(part[column])
    except (ValueError, TypeError) as error:
        raise InputError(f"input.time: column {column!r}: not a time ({first_line(error)})") from None
    return part.assign(**{column: values})


def _with_time(df: dd.DataFrame, config: ParquetInput | CsvInput | SyntheticTicks) -> dd.DataFrame:
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


def read_table(config: ParquetInput | CsvInput | SyntheticTicks) -> dd.DataFrame:
    """The lazy DataFrame an ``input:`` block describes."""
    if config.format == "parquet":
        return read_parquet(config)
    if config.format == "csv":
        return read_csv(config)
    return _with_time(synthetic_ticks(config), config)


# ----------------------------------------------------------------------------------------------
# sinks
def new_run_id() -> str:
    """A short unique id for a run's temporary paths."""
    return uuid.uuid4().hex[:12]


@dataclass
class Publication:
    """An output being written: a temp path next to the target, moved into place on success.

    Use as ``with Publication.start(output) as pub: write(pub.tmp_path); pub.publish()``;
    leaving the block without ``publish()`` (an error, Ctrl-C) removes the temp path.
    """

    target: str
    tmp_path: str
    overwrite: bool
    fs: fsspec.AbstractFileSystem
    new_parents: list[str] = field(default_factory=list)
    published: bool = field(default=False)

    @classmethod
    def start(cls, output: OutputConfig, run_id: str | None = None, suffix: str = "") -> Publication:
        """Check the target may be written, and choose the temp path (creates nothing)."""
        fs, _, (target,) = fsspec.get_fs_token_paths(output.path + suffix, storage_options=output.storage_options)
        check_target(fs, target, output.overwrite, "output.path")
        new_parents = []
        parent = os.path.dirname(target.rstrip("/"))
        while parent and parent != os.path.dirname(parent) and not fs.exists(parent):
            new_parents.append(parent)
            parent = os.path.dirname(parent)
        return cls(target, f"{target}.tmp-{run_id or new_run_id()}", output.overwrite, fs, new_parents)

    def publish(self) -> None:
        """Move the temp output into place (old output aside first, removed after), then _SUCCESS."""
        aside = None
        if self.fs.exists(self.target):
            check_target(self.fs, self.target, self.overwrite, "output.path")
            aside = f"{self.tmp_path}.old"
            _move(self.fs, self.target, aside)
        _move(self.fs, self.tmp_path, self.target)
        if self.fs.isdir(self.target):
            self.fs.touch(f"{self.target}/{SUCCESS}")
        if aside is not None:
            self.fs.rm(aside, recursive=True)
        self.published = True

    @property
    def tmp_url(self) -> str:
        """The temp path with its protocol (``memory://``, ``s3://``...), for writers."""
        return self.fs.unstrip_protocol(self.tmp_path)

    @property
    def url(self) -> str:
        """The target as users wrote it: a local path, or a URL with its protocol."""
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        return self.target if "file" in protocols else self.fs.unstrip_protocol(self.target)

    def discard(self) -> None:
        """Remove the temp output, if any, and the (still empty) folders made for it."""
        if self.fs.exists(self.tmp_path):
            self.fs.rm(self.tmp_path, recursive=True)
        for folder in self.new_parents:  # deepest first
            if self.fs.exists(folder) and not self.fs.ls(folder):
                self.fs.rmdir(folder)

    def __enter__(self) -> Publication:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published:
            self.discard()


def _move(fs: fsspec.AbstractFileSystem, source: str, target: str) -> None:
    """``fs.mv`` of a file or folder; on object stores a folder moves key by key (fsspec's
    recursive move also copies the folder's own key, which does not exist there: NoSuchKey)."""
    if "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol) or not fs.isdir(source):
        fs.mv(source, target, recursive=True)
        return
    for path in fs.find(source):
        fs.mv(path, target + path[len(source):])
    if fs.exists(source):  # pseudo-folders of in-memory stores
        fs.rm(source, recursive=True)


def check_target(fs: fsspec.AbstractFileSystem, target: str, overwrite: bool, key: str) -> None:
    """Refuse an existing target unless ``overwrite``."""
    if fs.exists(target) and not overwrite:
        raise InputError(f"{key}: {target} already exists; set overwrite: true to replace it")


def parquet_writer(df: dd.DataFrame, path: str, storage_options: dict[str, Any] | None = None) -> Any:
    """A lazy Parquet write of ``df`` into ``path`` (a Dask object; nothing is written yet)."""
    return df.to_parquet(
        path, compute=False, write_index=False, storage_options=storage_options or None,
        write_metadata_file=False,
    )


def write_json_atomic(obj: Any, path: str) -> None:
    """Write ``obj`` as JSON to ``path`` through a temp file and an atomic rename."""
    tmp = f"{path}.tmp-{new_run_id()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with open(tmp, "w") as handle:
            json.dump(obj, handle, indent=1, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_json(path: str, key: str) -> Any | None:
    """JSON from ``path``, None when it does not exist; a clear error when it is not JSON."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{key}: {path}: not a readable JSON state ({first_line(error)})") from None


__all__ = [
    "Publication", "check_target", "new_run_id", "parquet_writer", "read_csv", "read_json",
    "read_parquet", "read_table", "synthetic_ticks", "write_json_atomic",
]
