"""Mergeable summaries: count, mean, std/var, min and max that are exact, incremental and per key.

The state of a set of values is :class:`Moments` ``(count, shift, mean, M2, min, max)``:
``shift`` is one value of the data (the first finite one) and ``mean`` and ``M2`` (the sum of
squared deviations) are those of ``x - shift``. Two states merge pairwise (Chan, Golub & LeVeque)
after re-basing one onto the other's shift, so no step ever sums raw values or squares of raw
values: on ``1e9 + N(0, 1)`` a plain ``(count, mean, M2)`` tree loses ~1e-10 of the std, this one
keeps the relative error at the level of rounding (<= 1e-12 in the tests, usually ~1e-15).

:func:`moments` tree-reduces a Dask DataFrame into a :class:`SummaryState` (a ``Moments`` per
column, and per key with ``by``) through Dask's own reduction machinery (``split_every``-ary tree of
depth ``ceil(log_k P)``); :func:`summarize` goes on to the pandas table. A state is saved as JSON
(floats as ``float.hex``, so lossless, ``inf``/``nan`` included) and merged with the next batch's,
so summarizing batch by batch equals summarizing all at once. :func:`summarize_array` does the same
elementwise for Dask arrays of NumPy or CuPy chunks.

Semantics (those of pandas):

- NaN (and ``None``/``pd.NA``) is skipped; ``count`` counts the other values, ``±inf`` included.
- ``±inf``: ``mean`` is ``inf``/``-inf`` when all infinities have one sign, NaN when both signs
  occur; ``std``/``var`` are NaN as soon as an infinity occurs; ``min``/``max`` include them.
- ``count <= ddof`` gives ``std``/``var`` NaN (``count < 2`` with the default ``ddof=1``);
  ``count == 0`` gives NaN for everything but ``count``.
- Integer columns are summarized as float64 (exact up to 2**53); bool columns are accepted and
  summarized as 0/1 (as ``pandas.Series.mean``/``std`` do). Other dtypes raise :class:`InputError`.
- ``min``/``max`` are reported as float64.
- With ``by``: one key per distinct value (tuple of values for several key columns); missing key
  values (NaN, None, NaT, pd.NA) form a key of their own, as ``groupby(dropna=False)``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipelines._xp import get_namespace, to_host
from pipelines.errors import InputError

__all__ = [
    "Moments",
    "SummaryState",
    "combine_mean_std",
    "get_namespace",
    "moments",
    "moments_array",
    "summarize",
    "summarize_array",
]

STATS = ("count", "mean", "std", "var", "min", "max")
STATE_FORMAT = "dask-flows/summary-state"
STATE_VERSION = 1
_FIELDS = ("count", "shift", "mean", "M2", "min", "max")  # JSON names of the Moments fields


# --------------------------------------------------------------------------------------------
# array namespace and lossless floats


def _hex(value: float) -> str:
    """A float as a lossless JSON-safe string (``float.hex``; ``inf``, ``-inf``, ``nan``)."""
    return float.hex(float(value))


def _unhex(text: str | float | int) -> float:
    if isinstance(text, str):
        try:
            return float.fromhex(text)
        except ValueError:
            return float(text)  # also accept repr strings such as '1.5' or 'inf'
    return float(text)


# --------------------------------------------------------------------------------------------
# Moments


@dataclass(frozen=True, eq=False)
class Moments:
    """Mergeable moments of a set of values, elementwise over arrays.

    Each field is an array (NumPy, CuPy, or Dask for lazy results) of the same shape: one state
    per element. ``shift`` is a value of the data (the first finite one; 0 when there is none), and
    ``mean_shifted``/``m2`` are the mean and the sum of squared deviations of ``x - shift`` over
    the non-NaN values. Build one with :meth:`from_values` or :meth:`empty` and combine with
    :meth:`merge`; read it with :meth:`count`, :meth:`mean`, :meth:`var`, :meth:`std`,
    :meth:`min`, :meth:`max`.

    Parameters
    ----------
    n : array of int64
        Count of non-NaN values (``±inf`` included).
    shift : array of float64
        A value of the data; the origin of ``mean_shifted``.
    mean_shifted : array of float64
        Mean of ``x - shift`` (``±inf``/NaN when infinities occur; 0 when empty).
    m2 : array of float64
        Sum of ``(x - mean)**2`` (NaN when infinities occur; 0 when empty).
    minimum, maximum : array of float64
        NaN when empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = Moments.from_values(np.array([1e9 + 1, 1e9 + 2, np.nan]))
    >>> b = Moments.from_values(np.array([1e9 + 3, 1e9 + 4]))
    >>> m = a.merge(b)
    >>> int(m.count()), float(m.mean()), float(m.var()), float(m.min())
    (4, 1000000002.5, 1.6666666666666667, 1000000001.0)

    Array-valued samples are summarized elementwise along ``axis``:

    >>> x = np.arange(12.0).reshape(4, 3)
    >>> Moments.from_values(x).mean()
    array([4.5, 5.5, 6.5])
    """

    n: Any
    shift: Any
    mean_shifted: Any
    m2: Any
    minimum: Any
    maximum: Any

    def __post_init__(self) -> None:
        xp = get_namespace(self.n, self.shift, self.mean_shifted, self.m2, self.minimum, self.maximum)
        for name in ("shift", "mean_shifted", "m2", "minimum", "maximum"):
            object.__setattr__(self, name, xp.asarray(getattr(self, name)).astype(np.float64, copy=False))
        object.__setattr__(self, "n", xp.asarray(self.n).astype(np.int64, copy=False))

    # construction ------------------------------------------------------------------------

    @classmethod
    def empty(cls, shape: tuple[int, ...] = (), xp: ModuleType = np) -> Moments:
        """The state of no values: the identity of :meth:`merge`.

        Examples
        --------
        >>> m = Moments.empty()
        >>> int(m.count()), float(m.mean()), float(m.std())
        (0, nan, nan)
        """
        zeros = xp.zeros(shape, dtype=np.float64)
        nan = xp.full(shape, math.nan, dtype=np.float64)
        return cls(xp.zeros(shape, dtype=np.int64), zeros, zeros, zeros, nan, nan)

    @classmethod
    def from_values(cls, x: Any, axis: int = 0) -> Moments:
        """The state of the values of ``x`` along ``axis`` (NumPy or CuPy; NaN skipped).

        Computed in float64 with a corrected two-pass algorithm within the block: one pass for an
        estimate ``c`` of the mean, then ``sum(x - c)`` and ``sum((x - c)**2)``.

        Examples
        --------
        >>> import numpy as np
        >>> m = Moments.from_values(np.array([2.0, np.nan, 4.0, np.inf]))
        >>> int(m.count()), float(m.mean()), float(m.std()), float(m.max())
        (3, inf, nan, inf)
        >>> Moments.from_values(np.array([[1.0, 2.0], [3.0, np.nan]])).count()
        array([2, 1])
        """
        xp = get_namespace(x)
        x = xp.asarray(x)
        if x.dtype != np.float64:
            x = x.astype(np.float64)
        if x.ndim == 0:
            x = x.reshape(1)
        x = xp.moveaxis(x, axis, 0) if axis not in (0, -x.ndim) else x
        n = x.shape[0]
        shape = tuple(x.shape[1:])
        if n == 0:
            return cls.empty(shape, xp)
        with np.errstate(invalid="ignore", over="ignore"):
            total = xp.sum(x, axis=0)
            if xp is np:  # in cache-sized blocks through one buffer: no large temporaries
                found = _numpy_blocked(x, total)
                return found if found is not None else cls._from_general(x, xp)
            if bool(xp.all(xp.isfinite(total))):  # no NaN, no inf: the fast path
                return cls._from_finite(x, total, xp)
            if x.ndim == 1:  # one set of values: drop the NaN, then the fast path if it can
                x = x[~xp.isnan(x)]
                if x.shape[0] == 0:
                    return cls.empty(shape, xp)
                total = xp.sum(x, axis=0)
                if bool(xp.isfinite(total)):
                    return cls._from_finite(x, total, xp)
            return cls._from_general(x, xp)

    @classmethod
    def _from_finite(cls, x: Any, total: Any, xp: ModuleType) -> Moments:
        n = x.shape[0]
        shift = x[0].copy()  # a copy: a view would keep the whole block alive
        c = total / n  # close to the mean; x - c is exact for x near c
        r = x - c
        s1 = xp.sum(r, axis=0)
        r *= r  # in place: r is ours
        s2 = xp.sum(r, axis=0)
        m2 = xp.maximum(s2 - s1 * (s1 / n), 0.0)
        mean_shifted = (c - shift) + s1 / n
        count = xp.full(x.shape[1:], n, dtype=np.int64)
        return cls(count, shift, mean_shifted, m2, xp.min(x, axis=0), xp.max(x, axis=0))

    @classmethod
    def _from_general(cls, x: Any, xp: ModuleType) -> Moments:
        nan = xp.isnan(x)
        valid = ~nan
        count = xp.sum(valid, axis=0, dtype=np.int64)
        finite = xp.isfinite(x)
        first = xp.argmax(finite, axis=0)  # 0 where there is no finite value
        shift = xp.take_along_axis(x, xp.expand_dims(first, 0), axis=0)[0]
        shift = xp.where(xp.any(finite, axis=0), shift, 0.0)
        safe = xp.maximum(count, 1)
        d = xp.where(valid, x - shift, 0.0)
        m0 = xp.sum(d, axis=0) / safe
        r = xp.where(valid, d - m0, 0.0)
        s1 = xp.sum(r, axis=0)
        s2 = xp.sum(r * r, axis=0)
        ok = xp.isfinite(m0)
        mean_shifted = xp.where(ok, m0 + s1 / safe, m0)
        m2 = xp.where(ok, xp.maximum(s2 - s1 * (s1 / safe), 0.0), math.nan)
        lo = xp.min(xp.where(nan, math.inf, x), axis=0)
        hi = xp.max(xp.where(nan, -math.inf, x), axis=0)
        empty = count == 0
        return cls(count, shift, mean_shifted, m2, xp.where(empty, math.nan, lo), xp.where(empty, math.nan, hi))

    # merging -----------------------------------------------------------------------------

    def merge(self, other: Moments) -> Moments:
        """The state of the union of both sets of values (Chan et al., on one shift).

        ``other`` is re-based onto ``self``'s shift (``other``'s where ``self`` is empty): the
        difference of the means is ``(shift_b - shift_a) + (mean_b - mean_a)``, both small and
        exact for data far from 0, then ``mean = mean_a + delta * n_b / n`` and
        ``M2 = M2_a + M2_b + delta**2 * n_a * n_b / n``. An empty state is the identity.

        Examples
        --------
        >>> import numpy as np
        >>> x = np.array([1e12 + 1e-3, 1e12, 1e12 + 2e-3, 1e12 - 1e-3])
        >>> m = Moments.from_values(x[:1]).merge(Moments.from_values(x[1:]))
        >>> bool(m.std() == Moments.from_values(x).std())
        True
        >>> Moments.empty().merge(m).count()
        array(4)
        """
        a, b = self, other
        if tuple(a.n.shape) != tuple(b.n.shape):
            raise InputError(f"moments of shape {tuple(a.n.shape)} and {tuple(b.n.shape)} cannot be merged")
        xp = get_namespace(a.n, b.n)
        with np.errstate(invalid="ignore", over="ignore"):
            na, nb = a.n, b.n
            n = na + nb
            a_empty, b_empty = na == 0, nb == 0
            wb = nb / xp.where(n > 0, n, 1)  # float: n_b / n
            delta = (b.shift - a.shift) + (b.mean_shifted - a.mean_shifted)
            mean_shifted = a.mean_shifted + delta * wb
            m2 = a.m2 + b.m2 + (delta * delta) * (na * wb)
            infinite = ~(xp.isfinite(a.mean_shifted) & xp.isfinite(b.mean_shifted))
            mean_shifted = xp.where(infinite, a.mean_shifted + b.mean_shifted, mean_shifted)
            m2 = xp.where(infinite, math.nan, m2)
            shift = xp.where(a_empty, b.shift, a.shift)
            mean_shifted = xp.where(a_empty, b.mean_shifted, xp.where(b_empty, a.mean_shifted, mean_shifted))
            m2 = xp.where(a_empty, b.m2, xp.where(b_empty, a.m2, m2))
            lo = xp.fmin(a.minimum, b.minimum)
            hi = xp.fmax(a.maximum, b.maximum)
        return Moments(n, shift, mean_shifted, m2, lo, hi)

    @staticmethod
    def merge_all(states: Iterable[Moments]) -> Moments:
        """Merge states pairwise in a balanced tree (no state is merged more than log2 times)."""
        return _merge_tree(list(states), "moments")

    # results -----------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of each field (``()`` for one column)."""
        return tuple(self.n.shape)

    def count(self) -> Any:
        """Number of non-NaN values."""
        return self.n

    def mean(self) -> Any:
        """Mean of the non-NaN values (NaN when empty; ``±inf``/NaN with infinities)."""
        xp = get_namespace(self.n)
        with np.errstate(invalid="ignore"):
            return xp.where(self.n > 0, self.shift + self.mean_shifted, math.nan)

    def var(self, ddof: int = 1) -> Any:
        """Variance with ``ddof`` (NaN when ``count <= ddof`` or when infinities occur)."""
        xp = get_namespace(self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (self.n > ddof) & xp.isfinite(self.mean_shifted)
            return xp.where(ok, self.m2 / xp.where(ok, self.n - ddof, 1), math.nan)

    def std(self, ddof: int = 1) -> Any:
        """Standard deviation with ``ddof``: ``sqrt(var(ddof))``."""
        xp = get_namespace(self.n)
        return xp.sqrt(self.var(ddof))

    def min(self) -> Any:
        """Smallest non-NaN value (NaN when empty)."""
        return self.minimum

    def max(self) -> Any:
        """Largest non-NaN value (NaN when empty)."""
        return self.maximum

    # layout helpers ------------------------------------------------------------------------

    def take(self, indexer: Any) -> Moments:
        """The states at ``indexer`` along the first axis."""
        return Moments(*(getattr(self, f)[indexer] for f in _ATTRS))

    def scatter(self, positions: Any, size: int) -> Moments:
        """A 1-D state of ``size`` elements, empty except at ``positions`` (which get ``self``)."""
        xp = get_namespace(self.n)
        out = Moments.empty((size,), xp)
        fields = []
        for name in _ATTRS:
            target = getattr(out, name).copy()
            target[positions] = getattr(self, name)
            fields.append(target)
        return Moments(*fields)

    def stack(self, axis: int = 0) -> Any:
        """The six fields stacked along a new ``axis`` (count as float64): see :meth:`from_stacked`."""
        xp = get_namespace(self.n)
        return xp.stack([self.n.astype(np.float64)] + [getattr(self, f) for f in _ATTRS[1:]], axis=axis)

    @classmethod
    def from_stacked(cls, stacked: Any, axis: int = 0) -> Moments:
        """Inverse of :meth:`stack`.

        Examples
        --------
        >>> import numpy as np
        >>> m = Moments.from_values(np.arange(6.0).reshape(3, 2))
        >>> Moments.from_stacked(m.stack()).mean()
        array([2., 3.])
        """
        xp = get_namespace(stacked)
        parts = [xp.take(stacked, i, axis=axis) for i in range(6)]
        return cls(parts[0].astype(np.int64), *parts[1:])

    # persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe, lossless dict: the shape and each field flattened (floats as ``float.hex``).

        Examples
        --------
        >>> import json, numpy as np
        >>> m = Moments.from_values(np.array([0.1, 0.2, np.inf]))
        >>> back = Moments.from_dict(json.loads(json.dumps(m.to_dict())))
        >>> float(back.mean()), float(back.max()), int(back.count())
        (inf, inf, 3)
        """
        out: dict[str, Any] = {"shape": list(self.shape)}
        out["count"] = [int(v) for v in to_host(self.n).reshape(-1)]
        for name, attr in zip(_FIELDS[1:], _ATTRS[1:]):
            out[name] = [_hex(v) for v in to_host(getattr(self, attr)).reshape(-1)]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], xp: ModuleType = np) -> Moments:
        """Inverse of :meth:`to_dict` (onto NumPy, or ``xp=cupy``)."""
        try:
            shape = tuple(int(s) for s in data["shape"])
            count = np.asarray([int(v) for v in data["count"]], dtype=np.int64).reshape(shape)
            fields = [
                np.asarray([_unhex(v) for v in data[name]], dtype=np.float64).reshape(shape)
                for name in _FIELDS[1:]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"moments: not a saved Moments state ({error})") from None
        if xp is not np:
            count, fields = xp.asarray(count), [xp.asarray(f) for f in fields]
        return cls(count, *fields)

    def __repr__(self) -> str:
        if self.shape == () and get_namespace(self.n) is not da:
            return (
                f"Moments(count={int(self.n)}, mean={float(self.mean())!r}, "
                f"std={float(self.std())!r}, min={float(self.minimum)!r}, max={float(self.maximum)!r})"
            )
        return f"Moments(shape={self.shape})"

    def __dask_tokenize__(self) -> Any:
        if get_namespace(self.n) is da:
            return tuple(getattr(self, f).name for f in _ATTRS)
        return json.dumps(self.to_dict())


_ATTRS = ("n", "shift", "mean_shifted", "m2", "minimum", "maximum")
_BLOCK = 1 << 16  # elements per block of the NumPy path (512 KiB of float64)


def _numpy_blocked(x: np.ndarray, total: np.ndarray) -> Moments | None:
    """:meth:`Moments.from_values` along axis 0 of a NumPy float64 array, block by block.

    ``total`` is ``x.sum(axis=0)``. Two passes over blocks of about ``_BLOCK`` elements through
    one reused buffer (a sum for the estimate ``c`` of the mean where NaN occur, then the sums of
    ``x - c`` and ``(x - c)**2``), plus ``fmin``/``fmax`` reductions: no temporary of the size of
    ``x``. Returns None when infinities occur (the caller takes the general path).
    """
    n = x.shape[0]
    shape = x.shape[1:]
    rows = max(1, _BLOCK // max(1, math.prod(shape)))
    blocks = [slice(i, min(i + rows, n)) for i in range(0, n, rows)]
    buf = np.empty((min(rows, n), *shape))
    has_nan = not bool(np.all(np.isfinite(total)))
    if has_nan:
        mask = np.empty(buf.shape, dtype=bool)
        count = np.zeros(shape, dtype=np.int64)
        total = np.zeros(shape)
        for block in blocks:
            xb, b, mb = x[block], buf[: block.stop - block.start], mask[: block.stop - block.start]
            np.isnan(xb, out=mb)
            np.copyto(b, xb)
            np.copyto(b, 0.0, where=mb)
            total += b.sum(axis=0)
            count += len(xb) - np.count_nonzero(mb, axis=0)
        if not bool(np.all(np.isfinite(total))):
            return None  # infinities
        safe = np.maximum(count, 1)
        c = total / safe
    else:
        count = np.full(shape, n, dtype=np.int64)
        safe = count
        c = total / n
    s1 = np.zeros(shape)
    s2 = np.zeros(shape)
    for block in blocks:
        xb, b = x[block], buf[: block.stop - block.start]
        np.subtract(xb, c, out=b)  # exact for x near c
        if has_nan:
            mb = mask[: len(xb)]
            np.isnan(xb, out=mb)
            np.copyto(b, 0.0, where=mb)
        s1 += b.sum(axis=0)
        np.multiply(b, b, out=b)
        s2 += b.sum(axis=0)
    shift = _first_finite(x, rows) if has_nan else x[0].copy()
    m2 = np.maximum(s2 - s1 * (s1 / safe), 0.0)
    mean_shifted = (c - shift) + s1 / safe
    empty = count == 0
    mean_shifted = np.where(empty, 0.0, mean_shifted)
    m2 = np.where(empty, 0.0, m2)
    lo = np.fmin.reduce(x, axis=0)  # NaN-skipping; NaN where all are NaN
    hi = np.fmax.reduce(x, axis=0)
    return Moments(count, shift, mean_shifted, m2, lo, hi)


def _first_finite(x: np.ndarray, rows: int) -> np.ndarray:
    """The first finite value along axis 0 of each element (0 where there is none)."""
    shape = x.shape[1:]
    shift = np.zeros(shape)
    found = np.zeros(shape, dtype=bool)
    for i in range(0, x.shape[0], rows):
        xb = x[i : i + rows]
        finite = np.isfinite(xb)
        here = finite.any(axis=0) & ~found
        if bool(np.any(here)):
            first = np.take_along_axis(xb, np.expand_dims(finite.argmax(axis=0), 0), axis=0)[0]
            shift = np.where(here, first, shift)
            found = found | here
            if bool(np.all(found)):
                break
    return shift


# --------------------------------------------------------------------------------------------
# combine_mean_std


def combine_mean_std(
    mean1: Any, std1: Any, n1: Any, mean2: Any, std2: Any, n2: Any, ddof: int = 1
) -> tuple[Any, Any, Any]:
    """Mean, std and count of the union of two groups given as ``(mean, std, n)``.

    Stable pairwise form (Chan et al.): ``delta = mean2 - mean1``, ``mean = mean1 + delta*n2/n``,
    ``M2 = M2_1 + M2_2 + delta**2 * n1*n2/n`` with ``M2_i = std_i**2 * (n_i - ddof)``. A group with
    ``n = 0`` is the identity (its mean and std are ignored); a group with ``n = 1`` contributes its
    mean and no spread (its std, NaN with ``ddof=1``, is ignored). The std is NaN when
    ``n <= ddof``. Works elementwise on arrays.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0, 11.0])
    >>> mean, std, n = combine_mean_std(a.mean(), a.std(ddof=1), 3, b.mean(), b.std(ddof=1), 2)
    >>> both = np.r_[a, b]
    >>> bool(np.isclose(mean, both.mean())), bool(np.isclose(std, both.std(ddof=1))), n
    (True, True, 5)
    >>> combine_mean_std(5.0, float("nan"), 1, 0.0, 0.0, 0)
    (5.0, nan, 1)
    >>> combine_mean_std(1.0, float("nan"), 1, 3.0, float("nan"), 1)
    (2.0, 1.4142135623730951, 2)
    """
    scalar = all(np.ndim(v) == 0 for v in (mean1, std1, n1, mean2, std2, n2))
    values = np.broadcast_arrays(*(np.asarray(v) for v in (mean1, std1, n1, mean2, std2, n2)))
    states = []
    for mean, std, n in (values[:3], values[3:]):
        if n.dtype.kind not in "iub" and not np.all(n == np.floor(n)):
            raise InputError(f"combine_mean_std: counts must be whole numbers, got {n!r}")
        n = n.astype(np.int64)
        if np.any(n < 0):
            raise InputError(f"combine_mean_std: counts must be >= 0, got {n!r}")
        mean = mean.astype(np.float64)
        std = std.astype(np.float64)
        if np.any(std < 0):
            raise InputError(f"combine_mean_std: std must be >= 0, got {std!r}")
        with np.errstate(invalid="ignore"):
            m2 = np.where(n > 1, std * std * (n - ddof), 0.0)
            m2 = np.where((n > 1) & (n <= ddof), np.nan, m2)  # the spread is unknown
        mean = np.where(n > 0, mean, 0.0)
        nan = np.full_like(mean, np.nan)
        # shift = the group's mean: as good an origin as any value of the group
        states.append(Moments(n, mean, np.zeros_like(mean), m2, nan, nan))
    merged = states[0].merge(states[1])
    mean, std, n = merged.mean(), merged.std(ddof), merged.count()
    if scalar:
        return float(mean), float(std), int(n)
    return mean, std, n


# --------------------------------------------------------------------------------------------
# keys


def _as_list(value: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _factorize_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..K-1 of the distinct rows of ``frame`` in order of first appearance, and the
    position of each one's first row. Missing values (NaN, None, NaT, pd.NA) equal each other."""
    n = len(frame)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes = None
    for name in frame.columns:
        column_codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
        column_codes = column_codes.astype(np.int64)
        if codes is None:
            codes = column_codes
        else:
            codes, _ = pd.factorize(codes * len(uniques) + column_codes)
            codes = codes.astype(np.int64)
    assert codes is not None
    running = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, running[1:] > running[:-1]])
    return codes, first


def _encode_value(value: Any, what: str) -> Any:
    """A key value or a column name as a JSON-safe, type-preserving value."""
    if value is None or (not isinstance(value, (str, bytes)) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return {"float": _hex(value)}
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
            return _unhex(value["float"])
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
        by_list = _as_list(by)
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
        by_list = _as_list(by)
        cols = _check_columns(frame, columns, by_list)
        return _frame_state(frame, cols, by_list)

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
        codes, first = _factorize_rows(both)
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
        return _merge_tree(list(states), "summary states")

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


def _merge_tree(level: list[Any], what: str) -> Any:
    """``a.merge(b)`` over ``level`` pairwise in a balanced tree (depth ceil(log2 n))."""
    if not level:
        raise InputError(f"no {what} to merge")
    while len(level) > 1:
        level = [
            level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


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
# per-partition states


def _is_summarizable(dtype: Any) -> bool:
    types = pd.api.types
    return bool(types.is_bool_dtype(dtype)) or (
        bool(types.is_numeric_dtype(dtype)) and not types.is_complex_dtype(dtype)
    )


def _check_columns(frame: Any, columns: Sequence[Hashable] | Hashable | None, by: list[Hashable]) -> list[Hashable]:
    """The columns to summarize; :class:`InputError` naming a bad one."""
    dtypes = frame.dtypes
    for name in by:
        if name not in dtypes.index:
            raise InputError(f"key column {name!r}: not in the frame (columns: {', '.join(map(str, dtypes.index))})")
    if columns is None:
        chosen = [c for c in dtypes.index if c not in by and _is_summarizable(dtypes[c])]
        if not chosen:
            raise InputError("summary: no numeric columns to summarize")
        return chosen
    chosen = _as_list(columns)
    if len(set(chosen)) != len(chosen):
        raise InputError(f"summary: columns repeated in {chosen!r}")
    for name in chosen:
        if name not in dtypes.index:
            raise InputError(f"column {name!r}: not in the frame (columns: {', '.join(map(str, dtypes.index))})")
        if name in by:
            raise InputError(f"column {name!r}: is a key column (by); it cannot be summarized too")
        if not _is_summarizable(dtypes[name]):
            raise InputError(f"column {name!r}: not numeric (dtype {dtypes[name]})")
    return chosen


def _float_values(column: pd.Series) -> np.ndarray:
    if column.dtype == np.float64:
        return column.to_numpy()
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _grouped_moments(x: np.ndarray, codes: np.ndarray, size: int) -> Moments:
    """Moments of ``x`` per group ``codes`` (0..size-1, every group present)."""
    with np.errstate(invalid="ignore", over="ignore"):
        nan = np.isnan(x)
        valid = ~nan
        count = np.bincount(codes, weights=valid, minlength=size).astype(np.int64)
        finite = np.isfinite(x)
        shift = pd.Series(np.where(finite, x, np.nan)).groupby(codes).first()
        shift = shift.reindex(range(size)).fillna(0.0).to_numpy(dtype=np.float64)
        safe = np.maximum(count, 1)
        d = np.where(valid, x - shift[codes], 0.0)
        m0 = np.bincount(codes, weights=d, minlength=size) / safe
        r = np.where(valid, d - m0[codes], 0.0)
        s1 = np.bincount(codes, weights=r, minlength=size)
        s2 = np.bincount(codes, weights=r * r, minlength=size)
        ok = np.isfinite(m0)
        mean_shifted = np.where(ok, m0 + s1 / safe, m0)
        m2 = np.where(ok, np.maximum(s2 - s1 * (s1 / safe), 0.0), np.nan)
        lo = np.full(size, np.inf)
        hi = np.full(size, -np.inf)
        np.fmin.at(lo, codes, x)
        np.fmax.at(hi, codes, x)
        empty = count == 0
        return Moments(count, shift, mean_shifted, m2, np.where(empty, np.nan, lo), np.where(empty, np.nan, hi))


def _frame_state(frame: pd.DataFrame, columns: Sequence[Hashable], by: Sequence[Hashable]) -> SummaryState:
    if not by:
        return SummaryState(tuple(columns), {c: Moments.from_values(_float_values(frame[c])) for c in columns})
    key_frame = frame[list(by)]
    codes, first = _factorize_rows(key_frame)
    keys = key_frame.iloc[first].reset_index(drop=True)
    size = len(first)
    moments = {c: _grouped_moments(_float_values(frame[c]), codes, size) for c in columns}
    return SummaryState(tuple(columns), moments, tuple(by), keys)


# --------------------------------------------------------------------------------------------
# the Dask reductions


def _chunk(frame: pd.DataFrame, columns: list[Hashable], by: list[Hashable]) -> SummaryState:
    return _frame_state(frame, columns, by)


def _combine(states: Any) -> SummaryState:
    return SummaryState.merge_all(list(states))


def _aggregate_state(states: Any) -> SummaryState:
    return SummaryState.merge_all(list(states))


def _aggregate_frame(states: Any, ddof: int) -> pd.DataFrame:
    return SummaryState.merge_all(list(states)).to_frame(ddof=ddof)


def _check_split_every(split_every: Any) -> int:
    if isinstance(split_every, bool) or not isinstance(split_every, numbers.Integral) or split_every < 2:
        raise InputError(f"split_every: must be an integer >= 2, got {split_every!r}")
    return int(split_every)


def _prepare(
    df: dd.DataFrame | dd.Series, columns: Any, by: Any, split_every: Any
) -> tuple[dd.DataFrame, list[Hashable], list[Hashable], int]:
    if isinstance(df, dd.Series):
        df = df.to_frame()
    if not isinstance(df, dd.DataFrame):
        raise InputError(f"summary: expected a Dask DataFrame, got {type(df).__name__}")
    by_list = _as_list(by)
    cols = _check_columns(df._meta, columns, by_list)
    return df[cols + by_list], cols, by_list, _check_split_every(split_every)


def moments(
    df: dd.DataFrame | dd.Series,
    columns: Hashable | Sequence[Hashable] | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    split_every: int = 8,
) -> Any:
    """Lazy :class:`SummaryState` of ``df``: one state per partition, tree-merged.

    Parameters
    ----------
    df : dask.dataframe.DataFrame or Series
    columns : column name or list, optional
        Default: every numeric or bool column that is not a key.
    by : column name or list, optional
        Key columns; missing key values form a key of their own.
    split_every : int, default 8
        Fan-in of the tree: ``P`` partitions give a tree ``ceil(log_k P)`` tasks deep.

    Returns
    -------
    dask Scalar
        Computes to a :class:`SummaryState` (no sources; add them with
        :meth:`SummaryState.with_source`).

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> df = dd.from_pandas(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), npartitions=3)
    >>> state = moments(df).compute(scheduler="sync")
    >>> state.moments["x"]
    Moments(count=4, mean=2.5, std=1.2909944487358056, min=1.0, max=4.0)
    """
    frame, cols, by_list, k = _prepare(df, columns, by, split_every)
    meta = SummaryState.empty(cols, by_list or None, frame._meta[by_list] if by_list else None)
    return frame.reduction(
        chunk=_chunk,
        combine=_combine,
        aggregate=_aggregate_state,
        chunk_kwargs={"columns": cols, "by": by_list},
        split_every=k,
        meta=meta,
        token="summary-moments",
    )


def summarize(
    df: dd.DataFrame | dd.Series,
    columns: Hashable | Sequence[Hashable] | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    split_every: int = 8,
    ddof: int = 1,
) -> dd.DataFrame:
    """Lazy summary table of ``df``: computes to :meth:`SummaryState.to_frame`'s DataFrame.

    Columns count, mean, std, var, min, max; one row per column, or per ``(key..., column)``.
    See :func:`moments` for the parameters; ``ddof`` is that of ``std`` and ``var``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, dask.dataframe as dd
    >>> pdf = pd.DataFrame({"k": [1, 1, 2, 2, 2], "x": [1.0, 3.0, 2.0, np.nan, 4.0]})
    >>> lazy = summarize(dd.from_pandas(pdf, npartitions=2), by="k")
    >>> lazy.compute(scheduler="sync")  # doctest: +NORMALIZE_WHITESPACE
              count  mean       std  var  min  max
    k column
    1 x           2   2.0  1.414214  2.0  1.0  3.0
    2 x           2   3.0  1.414214  2.0  2.0  4.0
    """
    frame, cols, by_list, k = _prepare(df, columns, by, split_every)
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise InputError(f"ddof: must be an integer >= 0, got {ddof!r}")
    empty = SummaryState.empty(cols, by_list or None, frame._meta[by_list] if by_list else None)
    return frame.reduction(
        chunk=_chunk,
        combine=_combine,
        aggregate=_aggregate_frame,
        chunk_kwargs={"columns": cols, "by": by_list},
        aggregate_kwargs={"ddof": int(ddof)},
        split_every=k,
        meta=empty.to_frame(ddof=int(ddof)),
        token="summary",
    )


# --------------------------------------------------------------------------------------------
# Dask arrays


def _array_chunk(block: Any, axis: tuple[int, ...], keepdims: bool, computing_meta: bool = False) -> Any:
    if computing_meta:
        return block
    return Moments.from_values(block, axis=axis[0])


def _array_combine(parts: Any, axis: tuple[int, ...], keepdims: bool) -> Moments:
    return Moments.merge_all(_flat(parts))


def _array_aggregate(parts: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return Moments.merge_all(_flat(parts)).stack(axis=axis[0])


def _flat(parts: Any) -> list[Moments]:
    if isinstance(parts, Moments):
        return [parts]
    out: list[Moments] = []
    for p in parts:
        out.extend(_flat(p))
    return out


def moments_array(x: da.Array, axis: int = 0, split_every: int = 8) -> Moments:
    """Lazy elementwise :class:`Moments` of a Dask array along ``axis`` (NumPy or CuPy chunks).

    One state per block, tree-merged with ``dask.array.reduction`` (fan-in ``split_every``); the
    six fields come back as one float64 array (``count`` exact up to 2**53) split into a
    :class:`Moments` of lazy Dask arrays: ``dask.compute(m)[0]`` is a concrete one, to merge with
    the next batch's or save with :meth:`Moments.to_dict`.

    Examples
    --------
    >>> import dask, dask.array as da
    >>> m = moments_array(da.arange(12.0, chunks=5).reshape(4, 3))
    >>> dask.compute(m, scheduler="sync")[0].mean()
    array([4.5, 5.5, 6.5])
    """
    if not isinstance(x, da.Array):
        x = da.asarray(x)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise InputError(f"axis: must be one integer, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise InputError(f"axis: {axis} is out of range for an array of {x.ndim} dimensions")
    axis = int(axis) % x.ndim
    k = _check_split_every(split_every)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"array: not numeric (dtype {x.dtype})")
    stacked = da.reduction(
        x,
        chunk=_array_chunk,
        combine=_array_combine,
        aggregate=_array_aggregate,
        axis=axis,
        keepdims=True,
        dtype=np.float64,
        split_every=k,
        concatenate=False,
        output_size=6,
        meta=x._meta.astype(np.float64),
        name="summary-moments-array",
    )
    parts = [da.take(stacked, i, axis=axis) for i in range(6)]
    return Moments(parts[0].astype(np.int64), *parts[1:])


def summarize_array(x: da.Array, axis: int = 0, split_every: int = 8, ddof: int = 1) -> dict[str, da.Array]:
    """Lazy elementwise count, mean, std, var, min, max of a Dask array along ``axis``.

    Returns a dict of Dask arrays (of the shape of ``x`` without ``axis``, chunked like it);
    ``dask.compute(result)[0]`` computes them together in one reduction. See :func:`moments_array`.

    Examples
    --------
    >>> import dask, numpy as np, dask.array as da
    >>> x = np.arange(20.0).reshape(5, 4)
    >>> out = dask.compute(summarize_array(da.from_array(x, chunks=2)), scheduler="sync")[0]
    >>> bool(np.allclose(out["std"], x.std(axis=0, ddof=1))), out["count"]
    (True, array([5, 5, 5, 5]))
    """
    m = moments_array(x, axis=axis, split_every=split_every)
    return {
        "count": m.count(),
        "mean": m.mean(),
        "std": m.std(ddof),
        "var": m.var(ddof),
        "min": m.min(),
        "max": m.max(),
    }
