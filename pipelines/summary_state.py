"""The keyed summary state: :class:`Moments` per column (and per key), and its JSON-safe form.

A :class:`SummaryState` holds one :class:`~pipelines.moments.Moments` per summarized column
(0-d without keys, one per key with ``by``), the key values, and the inputs (path and fingerprint)
merged into it, so that an input is never merged twice. It merges with another state key by key,
computes from a pandas frame (what each partition does), and turns into the summary table. Its
dict form (:meth:`SummaryState.to_dict`) is JSON-safe and lossless (floats as ``float.hex``, key
values with their type); reading and writing that JSON is the caller's job.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines._checks import check_columns
from pipelines._keys import as_list, first_positions, key_codes
from pipelines._xp import to_host
from pipelines.errors import InputError
from pipelines.moments import Moments, grouped_moments, hex_float, merge_tree, unhex_float

__all__ = ["STATE_FORMAT", "STATE_VERSION", "STATS", "SummaryState"]

STATS = ("count", "mean", "std", "var", "min", "max")
STATE_FORMAT = "dask-flows/summary-state"
STATE_VERSION = 1


# --------------------------------------------------------------------------------------------
# saved values


def _encode_value(value: Any, what: str) -> Any:
    """A key value or a column name as a JSON-safe, type-preserving value."""
    if value is None or (not isinstance(value, (str, bytes)) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return {"float": hex_float(value)}
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat()}
    if isinstance(value, pd.Timedelta):
        return {"timedelta": int(value.value)}
    raise InputError(f"{what}: a value of type {type(value).__name__} cannot be saved in a summary state")


def _dtype_name(dtype: Any) -> str:
    """A name that ``pandas.api.types.pandas_dtype`` turns back into ``dtype``."""
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
        return f"string[{dtype.storage}]"
    return str(dtype)


def _decode_value(value: Any) -> Any:
    if value is None:
        return np.nan
    if isinstance(value, dict):
        if "float" in value:
            return unhex_float(value["float"])
        if "timestamp" in value:
            return pd.Timestamp(value["timestamp"])
        if "timedelta" in value:
            return pd.Timedelta(int(value["timedelta"]), unit="ns")
        raise InputError(f"summary state: unknown value {value!r}")
    return value


def _key_frame(rows: list[list[Any]], by: Sequence[Hashable], dtypes: Sequence[str]) -> pd.DataFrame:
    columns = {}
    for i, name in enumerate(by):
        values = [_decode_value(row[i]) for row in rows]
        column = pd.Series(values, dtype=object if not values else None)
        try:
            column = column.astype(pd.api.types.pandas_dtype(dtypes[i]))
        except (TypeError, ValueError):
            pass
        columns[i] = column
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))
    frame.columns = pd.Index(list(by), dtype=object)
    return frame


# --------------------------------------------------------------------------------------------
# SummaryState


@dataclass(frozen=True, eq=False)
class SummaryState:
    """Moments per column (and per key), plus the inputs merged into them.

    Parameters
    ----------
    columns : tuple
        The summarized columns, in order.
    moments : dict
        Column -> :class:`Moments`; 0-d fields without ``by``, 1-d (one per key) with it.
    by : tuple or None
        The key columns.
    keys : pandas.DataFrame or None
        One row per key (columns ``by``), aligned with the moments; None without ``by``.
    sources : tuple of dict
        ``{"path": ..., "fingerprint": ...}`` of each input merged in; an input is identified by
        its fingerprint (the same path with another fingerprint is another input).

    Examples
    --------
    >>> import json, pandas as pd
    >>> a = SummaryState.from_frame(pd.DataFrame({"x": [1.0, 2.0]})).with_source("b1", "f1")
    >>> b = SummaryState.from_frame(pd.DataFrame({"x": [3.0, 4.0]})).with_source("b2", "f2")
    >>> saved = json.dumps(a.to_dict())
    >>> SummaryState.from_dict(json.loads(saved)).merge(b).to_frame()  # doctest: +NORMALIZE_WHITESPACE
            count  mean       std       var  min  max
    column
    x           4   2.5  1.290994  1.666667  1.0  4.0
    >>> a.merge(b).merge(b)
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: input 'b2' (fingerprint f2) is already merged into the summary state
    """

    columns: tuple[Hashable, ...]
    moments: dict[Hashable, Moments]
    by: tuple[Hashable, ...] | None = None
    keys: pd.DataFrame | None = None
    sources: tuple[dict[str, str], ...] = field(default_factory=tuple)

    # construction ------------------------------------------------------------------------

    @classmethod
    def empty(
        cls,
        columns: Sequence[Hashable],
        by: Hashable | Sequence[Hashable] | None = None,
        keys: pd.DataFrame | None = None,
    ) -> SummaryState:
        """A state with no values (count 0 everywhere); ``keys`` gives the key dtypes."""
        by_list = as_list(by)
        if not by_list:
            return cls(tuple(columns), {c: Moments.empty() for c in columns})
        if keys is None:
            keys = pd.DataFrame({i: pd.Series([], dtype=object) for i in range(len(by_list))})
            keys.columns = pd.Index(by_list, dtype=object)
        keys = keys.iloc[:0].reset_index(drop=True)
        return cls(tuple(columns), {c: Moments.empty((0,)) for c in columns}, tuple(by_list), keys)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: Sequence[Hashable] | None = None,
        by: Hashable | Sequence[Hashable] | None = None,
    ) -> SummaryState:
        """The state of a pandas DataFrame (what each partition computes).

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"k": ["a", "b", "a", None], "x": [1.0, 2.0, 3.0, 4.0]})
        >>> SummaryState.from_frame(df, by="k").to_frame()[["count", "mean"]]  # doctest: +NORMALIZE_WHITESPACE
                  count  mean
        k   column
        a   x           2   2.0
        b   x           1   2.0
        nan x           1   4.0
        """
        by_list = as_list(by)
        cols = summary_columns(frame, columns, by_list)
        return frame_state(frame, cols, by_list)

    def with_source(self, path: str, fingerprint: str) -> SummaryState:
        """This state, recording that input ``path`` (identified by ``fingerprint``) is in it."""
        source = _check_source({"path": path, "fingerprint": fingerprint})
        _refuse_repeats(self.sources, [source])
        return SummaryState(self.columns, self.moments, self.by, self.keys, (*self.sources, source))

    # merging -----------------------------------------------------------------------------

    def merge(self, other: SummaryState) -> SummaryState:
        """The state of both inputs: moments merged per column (and key), sources concatenated.

        Columns present in one state only are empty in the other; keys likewise. Raises
        :class:`InputError` when the states are keyed differently or when an input of ``other``
        is already merged into ``self`` (same fingerprint).
        """
        if not isinstance(other, SummaryState):
            raise InputError(f"cannot merge a summary state with {type(other).__name__}")
        if self.by != other.by:
            raise InputError(
                f"summary states have different keys: by={_show(self.by)} and by={_show(other.by)}"
            )
        _refuse_repeats(self.sources, other.sources)
        columns = tuple(self.columns) + tuple(c for c in other.columns if c not in self.moments)
        sources = (*self.sources, *other.sources)
        if self.by is None:
            moments = {
                c: self.moments.get(c, Moments.empty()).merge(other.moments.get(c, Moments.empty()))
                for c in columns
            }
            return SummaryState(columns, moments, None, None, sources)
        assert self.keys is not None and other.keys is not None
        na, nb = len(self.keys), len(other.keys)
        if nb == 0 or na == 0:  # keep the other's keys as they are (and their dtypes)
            if nb == 0:
                own = {c: self.moments.get(c, Moments.empty((na,))) for c in columns}
                return SummaryState(columns, own, self.by, self.keys, sources)
            theirs = {c: other.moments.get(c, Moments.empty((nb,))) for c in columns}
            return SummaryState(columns, theirs, self.by, other.keys, sources)
        both = pd.concat([self.keys, other.keys], ignore_index=True)
        codes, _ = key_codes([both], list(both.columns))
        first = first_positions(codes)
        size = len(first)
        keys = both.iloc[first].reset_index(drop=True)
        where_b = codes[na:]
        moments = {}
        for c in columns:
            mine = self.moments.get(c, Moments.empty((na,)))
            theirs = other.moments.get(c, Moments.empty((nb,)))
            mine = mine.scatter(np.arange(na), size) if size > na else mine
            moments[c] = mine.merge(theirs.scatter(where_b, size))
        return SummaryState(columns, moments, self.by, keys, sources)

    @staticmethod
    def merge_all(states: Iterable[SummaryState]) -> SummaryState:
        """Merge states pairwise in a balanced tree."""
        return merge_tree(list(states), "summary states")

    # results -----------------------------------------------------------------------------

    def to_frame(self, ddof: int = 1) -> pd.DataFrame:
        """The summary table: columns count, mean, std, var, min, max.

        Indexed by column (index name ``column``), or by ``(key..., column)`` sorted by key
        (missing keys last, as pandas ``groupby``) then in column order; the last level is named
        ``column`` (``column_`` when a key column is called ``column``).
        """
        stats = {name: [] for name in STATS}
        for c in self.columns:
            m = self.moments[c]
            stats["count"].append(to_host(m.count()).astype(np.int64))
            stats["mean"].append(to_host(m.mean()))
            stats["std"].append(to_host(m.std(ddof)))
            stats["var"].append(to_host(m.var(ddof)))
            stats["min"].append(to_host(m.min()))
            stats["max"].append(to_host(m.max()))
        n_cols = len(self.columns)
        if self.by is None:
            index = pd.Index(list(self.columns), name="column")
            data = {
                s: np.asarray(v, dtype=np.int64 if s == "count" else np.float64).reshape(n_cols)
                for s, v in stats.items()
            }
            return pd.DataFrame(data, index=index, columns=list(STATS))
        assert self.keys is not None
        n_keys = len(self.keys)
        order = _key_order(self.keys)
        data = {}
        for s, v in stats.items():
            dtype = np.int64 if s == "count" else np.float64
            table = np.stack(v, axis=1) if v else np.zeros((n_keys, 0), dtype=dtype)
            data[s] = table.astype(dtype)[order].reshape(-1)
        keys = self.keys.iloc[order]
        arrays = [keys[name].repeat(n_cols).reset_index(drop=True) for name in self.by]
        column_level = pd.Index(list(self.columns)).take(np.tile(np.arange(n_cols), n_keys))
        level = "column" if "column" not in self.by else "column_"
        index = pd.MultiIndex.from_arrays([*arrays, column_level], names=[*self.by, level])
        return pd.DataFrame(data, index=index, columns=list(STATS))

    # persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe, lossless dict (see :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "columns": [_encode_value(c, "column name") for c in self.columns],
            "by": None if self.by is None else [_encode_value(b, "key name") for b in self.by],
            "keys": None,
            "moments": [self.moments[c].to_dict() for c in self.columns],
            "sources": [dict(s) for s in self.sources],
        }
        if self.by is not None:
            assert self.keys is not None
            out["keys"] = {
                "dtypes": [_dtype_name(self.keys[name].dtype) for name in self.by],
                "rows": [
                    [_encode_value(v, f"key column {name!r}") for v, name in zip(row, self.by)]
                    for row in self.keys.itertuples(index=False, name=None)
                ],
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SummaryState:
        """Inverse of :meth:`to_dict`; :class:`InputError` for anything else."""
        if not isinstance(data, Mapping) or data.get("format") != STATE_FORMAT:
            raise InputError("summary state: not a dask-flows summary state")
        if data.get("version") != STATE_VERSION:
            raise InputError(f"summary state: version {data.get('version')!r} is not supported")
        try:
            columns = tuple(_decode_value(c) for c in data["columns"])
            by = None if data["by"] is None else tuple(_decode_value(b) for b in data["by"])
            moments = {c: Moments.from_dict(m) for c, m in zip(columns, data["moments"], strict=True)}
            sources = tuple(_check_source(s) for s in data["sources"])
            keys = None
            if by is not None:
                keys = _key_frame(data["keys"]["rows"], by, data["keys"]["dtypes"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, InputError):
                raise
            raise InputError(f"summary state: malformed ({type(error).__name__}: {error})") from None
        _refuse_repeats((), sources)
        expected = () if by is None else (len(keys),)
        for c, m in moments.items():
            if m.shape != expected:
                raise InputError(f"summary state: column {c!r} has {m.shape} moments for {expected} keys")
        return cls(columns, moments, by, keys, sources)

    def __dask_tokenize__(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        keys = "" if self.keys is None else f", keys={len(self.keys)}"
        return f"SummaryState(columns={list(self.columns)}, by={_show(self.by)}{keys}, sources={len(self.sources)})"


def _show(by: tuple[Hashable, ...] | None) -> str:
    return "None" if by is None else repr(list(by))


def _key_order(keys: pd.DataFrame) -> np.ndarray:
    """Positions of ``keys`` sorted as pandas groupby sorts (missing last); as is if unsortable."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        ordered = keys.reset_index(drop=True).sort_values(
            by=list(keys.columns), na_position="last", kind="stable"
        )
        return ordered.index.to_numpy()
    except TypeError:
        return np.arange(len(keys))


def _check_source(source: Any) -> dict[str, str]:
    if not isinstance(source, Mapping) or set(source) != {"path", "fingerprint"}:
        raise InputError(f"summary state: a source must be {{path, fingerprint}}, got {source!r}")
    path, fingerprint = source["path"], source["fingerprint"]
    if not isinstance(path, str) or not isinstance(fingerprint, str) or not fingerprint:
        raise InputError(f"summary state: source path and fingerprint must be strings, got {source!r}")
    return {"path": path, "fingerprint": fingerprint}


def _refuse_repeats(present: Iterable[Mapping[str, str]], new: Iterable[Mapping[str, str]]) -> None:
    seen = {s["fingerprint"]: s["path"] for s in present}
    for s in new:
        if s["fingerprint"] in seen:
            raise InputError(
                f"input {s['path']!r} (fingerprint {s['fingerprint']}) is already merged into the summary state"
            )
        seen[s["fingerprint"]] = s["path"]


# --------------------------------------------------------------------------------------------
# the state of a pandas frame


def _is_summarizable(dtype: Any) -> bool:
    types = pd.api.types
    return bool(types.is_bool_dtype(dtype)) or (
        bool(types.is_numeric_dtype(dtype)) and not types.is_complex_dtype(dtype)
    )


def summary_columns(frame: Any, columns: Any, by: list[Hashable]) -> list[Hashable]:
    """The columns to summarize (default: every numeric or bool column that is not a key);
    :class:`InputError` naming a bad column or key."""
    dtypes = frame.dtypes
    check_columns("by", by, dtypes.index)
    if columns is None:
        chosen = [c for c in dtypes.index if c not in by and _is_summarizable(dtypes[c])]
        if not chosen:
            raise InputError("summary: no numeric columns to summarize")
        return chosen
    chosen = as_list(columns)
    check_columns("columns", chosen, dtypes.index)
    for name in chosen:
        if name in by:
            raise InputError(f"column {name!r}: is a key column (by); it cannot be summarized too")
        if not _is_summarizable(dtypes[name]):
            raise InputError(f"column {name!r}: not numeric (dtype {dtypes[name]})")
    return chosen


def _float_values(column: pd.Series) -> np.ndarray:
    if column.dtype == np.float64:
        return column.to_numpy()
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def frame_state(frame: pd.DataFrame, columns: Sequence[Hashable], by: Sequence[Hashable]) -> SummaryState:
    if not by:
        return SummaryState(tuple(columns), {c: Moments.from_values(_float_values(frame[c])) for c in columns})
    key_frame = frame[list(by)]
    codes, _ = key_codes([key_frame], list(by))
    first = first_positions(codes)
    keys = key_frame.iloc[first].reset_index(drop=True)
    size = len(first)
    moments = {c: grouped_moments(_float_values(frame[c]), codes, size) for c in columns}
    return SummaryState(tuple(columns), moments, tuple(by), keys)
