"""A/B timings of the table flow's per-partition kernels and of candidate changes (scratch, #14).

One process, one partition-sized frame of ``bench_table``'s data, every variant run in turn in
each of ``--rounds`` rounds (interleaved, so the ratios hold under a shared, loaded CPU); prints
the median ms per variant and its ratio to the first (today's) variant of its group. Checks that
each variant's result equals today's. Nothing here changes ``pipelines/``.

    python benchmarks/kernel_ab.py --data bench-data/profile-issue-folder-4000000 --rounds 7
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_table as bt  # noqa: E402
from pipelines._keys import key_codes, stable_order  # noqa: E402
from pipelines.dedup import _dedup_partition  # noqa: E402
from pipelines.lookahead import _Bounds, _Spec, _windows  # noqa: E402


# ----------------------------------------------------------------------------------------------
# window bounds: today's composite searchsorted against two linear-time variants


def windows_linear_start(codes: np.ndarray, n_groups: int, t: np.ndarray, span: int,
                         per_key_end: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_windows``' bounds with ``start`` from the next change of (key, time) in key-sorted
    order (no search), and ``end`` by a searchsorted per key (or one stable merge)."""
    order = stable_order(codes, n_groups)
    sorted_codes, ts = codes[order], t[order]
    n = len(order)
    change = np.flatnonzero((sorted_codes[1:] != sorted_codes[:-1]) | (ts[1:] != ts[:-1])) + 1
    bounds = np.append(change, n)
    start = np.repeat(bounds, np.diff(bounds, prepend=0))  # first row with another (key, t)
    group_starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    group_ends = np.append(group_starts[1:], n)
    end = np.empty(n, dtype=np.int64)
    if per_key_end:
        for a, b in zip(group_starts, group_ends):
            block = ts[a:b]
            end[a:b] = a + np.searchsorted(block, block + span, side="right")
    else:  # merge the sorted needles into the sorted composite key: a stable sort of two runs
        key = sorted_codes.astype(np.int64) * (int(ts.max() - ts.min()) + 2 * span + 2) + (ts - ts.min())
        needles = key + span
        merged = np.argsort(np.concatenate([key, needles]), kind="stable")
        is_needle = merged >= n
        end[merged[is_needle] - n] = np.flatnonzero(is_needle) - np.arange(n)
    return order, start, end


def rolling_today(price: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[np.ndarray]:
    """What ``_column_features`` does for max and min: pandas rolling over ``_Bounds``."""
    series = pd.Series(price, copy=False)
    return [getattr(series.rolling(_Bounds(start, end), min_periods=1), f)().to_numpy()
            for f in ("max", "min")]


def windows_today(codes: np.ndarray, n_groups: int, t: np.ndarray, span: int) -> tuple:
    """``_windows`` as it is now (linear start, end searched per key)."""
    spec = _Spec(None, span, "us", bt.TIME, "ts", (bt.KEY,), None)
    return _windows(len(t), codes, n_groups, t, spec)


def windows_before(codes: np.ndarray, n_groups: int, t: np.ndarray, span: int) -> tuple:
    """``_windows`` before #14 (d5e578d): four composite-key searchsorted over all rows."""
    order = stable_order(codes, n_groups)
    n = len(t)
    first_after = np.searchsorted(t, t, side="right")
    past_end = np.searchsorted(t, t + span, side="right")
    sorted_codes = codes[order].astype(np.int64)
    composite = sorted_codes * n + order
    start = np.searchsorted(composite, sorted_codes * n + first_after[order], side="left")
    end = np.searchsorted(composite, sorted_codes * n + past_end[order], side="left")
    return order, start.astype(np.int64), end.astype(np.int64)


def emitted_one_step(
    frames: Sequence[pd.DataFrame], n_rows: int, new: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The first ``n_rows`` rows of ``frames`` (concatenated) with columns ``new`` added, built in
    one step: each column's values joined once and one ``DataFrame`` constructor (``pd.concat`` of
    the rows, then of the columns, would copy every column twice; ``assign`` inserts them one at
    a time). Frames of different dtypes are joined by ``pd.concat``, which finds common ones.

    Examples
    --------
    >>> a = pd.DataFrame({"k": ["x", "y"], "v": [1, 2]}, index=[5, 6])
    >>> b = pd.DataFrame({"k": ["z"], "v": [3]}, index=[7])
    >>> emitted_one_step([a, b], 2, {"f": np.array([0.5, 1.5])})
       k  v    f
    5  x  1  0.5
    6  y  2  1.5
    """
    if any(not frame.dtypes.equals(frames[0].dtypes) for frame in frames[1:]):
        rows = pd.concat(frames).iloc[:n_rows]  # pd.concat finds the common dtypes
        return pd.concat([rows, pd.DataFrame(new, index=rows.index)], axis=1)
    pieces, left = [], n_rows
    for frame in frames:
        if left <= 0:
            break
        pieces.append(frame if len(frame) <= left else frame.iloc[:left])
        left -= len(pieces[-1])
    pieces = pieces or [frames[0].iloc[:0]]
    columns = [_joined([piece.iloc[:, i].array for piece in pieces])
               for i in range(pieces[0].shape[1])]
    index = frames[0].index.append([frame.index for frame in frames[1:]])[:n_rows]  # as pd.concat
    values = [*columns, *(np.asarray(v) for v in new.values())]
    out = pd.DataFrame(dict(enumerate(values)), index=index, copy=False)
    out.columns = pieces[0].columns.append(pd.Index(list(new)))
    return out


def _joined(parts: list[Any]) -> Any:
    """Arrays of one column and dtype joined end to end."""
    if isinstance(parts[0], pd.arrays.NumpyExtensionArray):
        arrays = [p.to_numpy() for p in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return parts[0] if len(parts) == 1 else type(parts[0])._concat_same_type(parts)


def emitted_before(frames: list[pd.DataFrame], n_rows: int, new: dict[str, np.ndarray]) -> Any:
    """The streaming kernel's output frame (today): concat of the rows, then of the columns."""
    rows = (frames[0] if len(frames) == 1 else pd.concat(frames)).iloc[:n_rows]
    return pd.concat([rows, pd.DataFrame(new, index=rows.index)], axis=1)


def rolling_sparse_table(values: np.ndarray, start: np.ndarray, end: np.ndarray,
                         reduce: Any) -> np.ndarray:
    """Max or min (``np.fmax``/``np.fmin``: NaN skipped) over ``[start, end)`` by a sparse table:
    level k holds the reduction over ``2**k`` rows; a window is two overlapping blocks. NaN for
    an empty or all-NaN window, as pandas' ``rolling(min_periods=1)``."""
    length = end - start
    longest = int(length.max()) if len(length) else 0
    levels = [values]
    while (1 << len(levels)) <= longest:
        width = 1 << (len(levels) - 1)
        previous = levels[-1]
        level = previous.copy()
        level[:-width] = reduce(previous[:-width], previous[width:])
        levels.append(level)
    table = np.stack(levels)
    k = np.zeros(len(length), dtype=np.int64)
    valid = length > 0
    k[valid] = np.log2(length[valid]).astype(np.int64)  # exact for the small integers here
    flat = table.reshape(-1)
    n = len(values)
    left = flat[k * n + np.minimum(start, n - 1)]
    right = flat[k * n + np.maximum(end - (1 << k), 0)]
    out = reduce(left, right)
    out[~valid] = np.nan
    return out


# ----------------------------------------------------------------------------------------------
# Parquet write settings


def write(frame: pd.DataFrame, **options: Any) -> int:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, **options)
    return sink.tell()


WRITES: dict[str, dict[str, Any]] = {
    "snappy (dask's default)": {"compression": "snappy"},
    "no compression": {"compression": "none"},
    "lz4": {"compression": "lz4"},
    "zstd level 1": {"compression": "zstd", "compression_level": 1},
    "snappy, dictionary only for symbol": {"compression": "snappy", "use_dictionary": [bt.KEY]},
    "snappy, dict for symbol/price/size": {"compression": "snappy",
                                           "use_dictionary": [bt.KEY, "price", "size"]},
    "snappy, dictionary, no statistics": {"compression": "snappy", "write_statistics": False},
    "snappy, dict only symbol, no stats": {"compression": "snappy", "use_dictionary": [bt.KEY],
                                           "write_statistics": False},
    "none, dict only symbol, no stats": {"compression": "none", "use_dictionary": [bt.KEY],
                                         "write_statistics": False},
}


# key codes: factorized in each of the three kernels of a partition, or once and remembered


def forgetting(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` with no key codes remembered (as before #14)."""
    from pipelines import _keys

    default, _keys._REMEMBERED_MAX = _keys._REMEMBERED_MAX, 0
    _keys._REMEMBERED.clear()
    try:
        return func(*args)
    finally:
        _keys._REMEMBERED_MAX = default


def partition_chain(file: str, rounds: int) -> None:
    """One partition through ``_last_rows``, ``_dedup_partition`` and the lookahead's streaming
    kernel (with pending rows in front), with the key codes remembered or not (interleaved; a
    fresh read each time, untimed, so that nothing is remembered from an earlier round)."""
    from pipelines import _keys
    from pipelines.dedup import _last_rows
    from pipelines.lookahead import _Pending, _streaming_kernel, _Wanted

    spec = _Spec(None, 30 * 10**6, "us", bt.TIME, "ts", (bt.KEY,), None)
    wanted = _Wanted(tuple(bt.COLUMNS), tuple(bt.FEATURES),
                     tuple(tuple(f"{c}_{f}_30s" for f in bt.FEATURES) for c in bt.COLUMNS), False)
    needed = [bt.KEY, *bt.SUBSET]
    first = pq.read_table(file).to_pandas()
    carry = first.groupby(bt.KEY).tail(1)[needed].reset_index(drop=True)
    rows = first.iloc[:2000].copy()
    rows[bt.TIME] = rows[bt.TIME] - (rows[bt.TIME].iloc[-1] - first[bt.TIME].iloc[0])
    t = rows[bt.TIME].to_numpy().view(np.int64)
    pending = _Pending(rows, t, int(t[-1]), 0, rows.index[-1], str(rows[bt.TIME].iloc[-1]))
    times: dict[str, list[float]] = {"factorized in each kernel (before #14)": [], "remembered": []}
    outputs = {}
    default = _keys._REMEMBERED_MAX
    for _ in range(rounds):
        for name, size in zip(times, (0, default)):
            part = pq.read_table(file).to_pandas()
            _keys._REMEMBERED_MAX = size
            start = time.perf_counter()
            _last_rows(part, [bt.KEY], needed)
            out = _dedup_partition(part, carry, [bt.KEY], bt.SUBSET, needed, True)
            outputs[name] = _streaming_kernel(out, pending, spec, 1, False, wanted)
            times[name].append(time.perf_counter() - start)
    _keys._REMEMBERED_MAX = default
    same = outputs[next(iter(times))].equals(outputs["remembered"])
    print(f"\nthree kernels of a partition, key codes ({'same output' if same else 'DIFFERENT'})")
    base = statistics.median(next(iter(times.values())))
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<44}{median * 1e3:9.1f} ms{median / base:7.2f}x")


# ----------------------------------------------------------------------------------------------


def interleaved(groups: dict[str, dict[str, Callable[[], Any]]], rounds: int) -> None:
    """Run every variant once per round, in turn; print medians and ratios per group."""
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for group, variants in groups.items():
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times.setdefault((group, name), []).append(time.perf_counter() - start)
    for group, variants in groups.items():
        print(f"\n{group}")
        base = statistics.median(times[(group, next(iter(variants)))])
        for name in variants:
            median = statistics.median(times[(group, name)])
            print(f"  {name:<44}{median * 1e3:9.1f} ms{median / base:7.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("bench-data/profile-issue-folder-4000000"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--groups", default="",
                        help="comma-separated words: only the groups whose title holds one")
    args = parser.parse_args(argv)
    file = bt.parquet_files(args.data.resolve())[0]
    raw = pq.read_table(file).to_pandas()
    frame = bt.pandas_dedup(raw).reset_index(drop=True)
    out = bt.pandas_lookahead(frame)
    t = frame[bt.TIME].to_numpy().view(np.int64)
    span = 30 * 10**6
    codes, n_groups = key_codes([frame], [bt.KEY])
    print(f"one partition: {len(raw):,} rows read, {len(frame):,} after dedup; "
          f"symbol dtype {frame[bt.KEY].dtype}; {args.rounds} interleaved rounds")

    today = windows_today(codes, n_groups, t, span)
    same = all(np.array_equal(a, b) for a, b in zip(today, windows_before(codes, n_groups, t, span)))
    print(f"window bounds, now and before #14: {'equal' if same else 'DIFFERENT'}")
    for per_key in (True, False):
        other = windows_linear_start(codes, n_groups, t, span, per_key)
        same = all(np.array_equal(a, b) for a, b in zip(today, other))
        print(f"window bounds, linear start + {'per-key' if per_key else 'merged'} end: "
              f"{'equal to today' if same else 'DIFFERENT'}")
    order, start, end = today
    price = frame["price"].to_numpy(dtype=np.float64)[order]
    pandas_result = rolling_today(price, start, end)
    sparse_result = [rolling_sparse_table(price, start, end, f) for f in (np.fmax, np.fmin)]
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(pandas_result, sparse_result))
    print(f"rolling max/min by sparse table: {'equal to pandas' if same else 'DIFFERENT'}; "
          f"longest window {int((end - start).max())} rows")
    groups = ab_groups(file, frame, out, span, today)
    if args.groups:
        groups = {name: group for name, group in groups.items()
                  if any(word in name for word in args.groups.split(","))}
    interleaved(groups, args.rounds)
    if not args.groups or "chain" in args.groups:
        partition_chain(file, args.rounds)
    print("\noutput partition size by write setting:")
    for name, opts in WRITES.items():
        print(f"  {name:<44}{write(out, **opts) / 2**20:8.1f} MiB")
    return 0


def ab_groups(file: str, frame: pd.DataFrame, out: pd.DataFrame, span: int,
              today: tuple) -> dict[str, dict[str, Callable[[], Any]]]:
    """The A/B groups: today's variant first in each."""
    t = frame[bt.TIME].to_numpy().view(np.int64)
    codes, n_groups = key_codes([frame], [bt.KEY])
    order, start, end = today
    price = frame["price"].to_numpy(dtype=np.float64)[order]
    categorical = frame.assign(**{bt.KEY: frame[bt.KEY].astype("category")})
    raw = pq.read_table(file).to_pandas()
    needed = [bt.KEY, *bt.SUBSET]
    carry = raw.groupby(bt.KEY).tail(1)[needed].reset_index(drop=True)  # like C_p: a row per key
    carry_rows = frame.iloc[-2000:]  # like the pending rows in front of a partition
    n_emit = len(carry_rows) + len(frame) - 2000
    new = {name: np.arange(n_emit, dtype=np.float64) for name in out.columns[len(frame.columns):]}
    return {
        "window bounds (_windows)": {
            "before #14 (composite searchsorted x 4)": lambda: windows_before(
                codes, n_groups, t, span),
            "now (_windows)": lambda: windows_today(codes, n_groups, t, span),
            "linear start + per-key searchsorted end": lambda: windows_linear_start(
                codes, n_groups, t, span, True),
            "linear start + merged end (stable sort)": lambda: windows_linear_start(
                codes, n_groups, t, span, False),
        },
        "key codes of symbol (3 per partition before #14)": {
            "key_codes on the str column (not remembered)": lambda: forgetting(
                key_codes, [frame], [bt.KEY]),
            "pd.factorize of the category codes": lambda: pd.factorize(
                categorical[bt.KEY].cat.codes.to_numpy()),
            "key_codes on a categorical column": lambda: key_codes([categorical], [bt.KEY]),
        },
        "read one file (pq.read_table().to_pandas())": {
            "symbol as str (today)": lambda: pq.read_table(file).to_pandas(),
            "symbol as dictionary -> category": lambda: pq.read_table(
                file, read_dictionary=[bt.KEY]).to_pandas(),
        },
        "emitted frame (streaming kernel's output)": {
            "today (concat rows, concat columns)": lambda: emitted_before(
                [carry_rows, frame], n_emit, new),
            "candidate: each column joined once, one constructor": lambda: emitted_one_step(
                [carry_rows, frame], n_emit, new),
        },
        "rolling max + min (pandas, _Bounds)": {
            "today: two rolling calls": lambda: rolling_today(price, start, end),
            "sparse table (np.fmax/np.fmin), NumPy only": lambda: [
                rolling_sparse_table(price, start, end, f) for f in (np.fmax, np.fmin)],
        },
        "dedup kernel: the carried rows in front of the partition": {
            "today: _dedup_partition (concat carry + partition)": lambda: _dedup_partition(
                raw, carry, [bt.KEY], bt.SUBSET, needed, True),
            "its concat + key codes alone": lambda: key_codes(
                [pd.concat([carry, raw[needed]], ignore_index=True)], [bt.KEY]),
            "key codes of the partition alone (no concat)": lambda: key_codes([raw], [bt.KEY]),
        },
        "write one output partition (from_pandas + write_table)": {
            name: (lambda opts=opts: write(out, **opts)) for name, opts in WRITES.items()
        },
    }


if __name__ == "__main__":
    sys.exit(main())
