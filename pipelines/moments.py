"""Mergeable moments: count, mean, M2, min and max that are exact, incremental and elementwise.

The state of a set of values is :class:`Moments` ``(count, shift, mean, M2, min, max)``:
``shift`` is one value of the data (the first finite one) and ``mean`` and ``M2`` (the sum of
squared deviations) are those of ``x - shift``. Two states merge pairwise (Chan, Golub & LeVeque)
after re-basing one onto the other's shift, so no step ever sums raw values or squares of raw
values: on ``1e9 + N(0, 1)`` a plain ``(count, mean, M2)`` tree loses ~1e-10 of the std, this one
keeps the relative error at the level of rounding (<= 1e-12 in the tests, usually ~1e-15).

Here: the state and its merge, its exact construction from a block of values (a blocked two-pass
NumPy path; any array namespace, CuPy included, otherwise), per-group construction, and the Dask
array reductions :func:`moments_array` / :func:`summarize_array`. The semantics of NaN, ``±inf``
and ``ddof`` are those of pandas; :mod:`pipelines.summary` states them.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from pipelines._xp import get_namespace, to_host
from pipelines.errors import InputError

__all__ = ["Moments", "combine_mean_std", "grouped_moments", "moments_array", "summarize_array"]

_FIELDS = ("count", "shift", "mean", "M2", "min", "max")  # JSON names of the Moments fields


# --------------------------------------------------------------------------------------------
# lossless floats


def hex_float(value: float) -> str:
    """A float as a lossless JSON-safe string (``float.hex``; ``inf``, ``-inf``, ``nan``)."""
    return float.hex(float(value))


def unhex_float(text: str | float | int) -> float:
    """Inverse of :func:`hex_float` (also accepts ``repr`` strings and plain numbers)."""
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
        return merge_tree(list(states), "moments")

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
            out[name] = [hex_float(v) for v in to_host(getattr(self, attr)).reshape(-1)]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], xp: ModuleType = np) -> Moments:
        """Inverse of :meth:`to_dict` (onto NumPy, or ``xp=cupy``)."""
        try:
            shape = tuple(int(s) for s in data["shape"])
            count = np.asarray([int(v) for v in data["count"]], dtype=np.int64).reshape(shape)
            fields = [
                np.asarray([unhex_float(v) for v in data[name]], dtype=np.float64).reshape(shape)
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


def merge_tree(level: list[Any], what: str) -> Any:
    """``a.merge(b)`` over ``level`` pairwise in a balanced tree (depth ceil(log2 n))."""
    if not level:
        raise InputError(f"no {what} to merge")
    while len(level) > 1:
        level = [
            level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


def grouped_moments(x: np.ndarray, codes: np.ndarray, size: int) -> Moments:
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


def check_split_every(split_every: Any) -> int:
    """``split_every`` (the fan-in of a tree reduction) as an int >= 2, else :class:`InputError`."""
    if isinstance(split_every, bool) or not isinstance(split_every, numbers.Integral) or split_every < 2:
        raise InputError(f"split_every: must be an integer >= 2, got {split_every!r}")
    return int(split_every)


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
    k = check_split_every(split_every)
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
