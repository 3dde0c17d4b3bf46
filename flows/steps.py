"""The built-in table steps: ``dedup``, ``lookahead``, ``lookback``, ``map`` and ``lookahead_map``,
each a params model + a function.

Each is registered with :func:`flows.registry.register_step`, exactly as a new step would be: its
parameters model validates ``steps: [- NAME: {...}]`` and its function maps a lazy Dask DataFrame
to another by calling a :mod:`pipelines` step.

Examples
--------
>>> LookaheadParams(horizon="30s", columns=["price"]).features
['change']
>>> LookbackParams(horizon=20, columns=["price"]).features
['mean']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import dask.dataframe as dd
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from flows.config import Columns, Strict
from flows.registry import StepContext, register_step
from pipelines.dedup import drop_consecutive_duplicates
from pipelines.errors import InputError
from pipelines import lookback
from pipelines.lookahead import FEATURES, future_features, map_lookahead, parse_horizon


class DedupParams(Strict):
    """``dedup``: keep the first (last) row of each run of equal rows of a key (see pipelines.dedup)."""

    subset: list[str] | None = None
    by: Columns | None = None
    nan_equal: bool = True
    keep: Literal["first", "last"] = Field("first", description="first or last row of each run")
    count: str | None = Field(None, description="a new int64 column: the rows in the kept row's run")


class BarrierLevels(Strict):
    """Relative levels of the ``barrier`` feature: up 0.02 = 2 % above the row's value."""

    up: float = Field(gt=0, allow_inf_nan=False)
    down: float = Field(gt=0, allow_inf_nan=False)


class LookaheadParams(Strict):
    """``lookahead``: future-aware features over a rows or time horizon (see pipelines.lookahead)."""

    horizon: int | str
    columns: list[str] = Field(min_length=1)
    features: list[str] = Field(["change"], description=f"any of {', '.join(FEATURES)}")
    by: Columns | None = None
    partial: bool = False
    label: str | None = None
    barrier: BarrierLevels | None = Field(
        None, validate_default=True,
        description="{up: float > 0, down: float > 0}, e.g. {up: 0.02, down: 0.01}: needed by "
                    "the barrier feature")

    @field_validator("horizon")
    @classmethod
    def _horizon(cls, value: int | str) -> int | str:
        parse_horizon(value)  # raises InputError with the message we want
        return value

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature {unknown[0]!r} (known: {', '.join(FEATURES)})")
        return value


    @field_validator("barrier")
    @classmethod
    def _barrier(cls, value: BarrierLevels | None, info: ValidationInfo) -> BarrierLevels | None:
        if value is None and "barrier" in info.data.get("features", ()):
            raise ValueError("the barrier feature needs barrier: {up: ..., down: ...}, both > 0")
        return value


def _parsed_horizon(value: int | str) -> int | str:
    """A horizon that :func:`pipelines.lookahead.parse_horizon` accepts (its InputError is the
    message)."""
    parse_horizon(value)
    return value


def _past_features(features: list[str]) -> list[str]:
    unknown = [f for f in features if f not in lookback.FEATURES]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r} (known: {', '.join(lookback.FEATURES)})")
    return features


class LookbackParams(Strict):
    """``lookback``: past-window features per key over a rows or time horizon (see pipelines.lookback)."""

    horizon: int | str
    columns: list[str] = Field(min_length=1)
    features: list[str] = Field(["mean"], description=f"any of {', '.join(lookback.FEATURES)}")
    by: Columns | None = None
    partial: bool = Field(False, description="incomplete windows over the rows there are, not NaN")

    _horizon = field_validator("horizon")(_parsed_horizon)
    _features = field_validator("features")(_past_features)


class MapParams(Strict):
    """``map``: apply ``module:function`` to every partition (the "parallelize apply" step)."""

    function: str
    kwargs: dict[str, Any] = {}
    meta: dict[str, str] | None = None

    @field_validator("function")
    @classmethod
    def _function(cls, value: str) -> str:
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValueError(f"{value!r} is not of the form 'module:function'")
        return value


class LookaheadMapParams(MapParams):
    """``lookahead_map``: ``module:function(frame, n_own, **kwargs)`` on each partition plus the future rows its windows need (see pipelines.lookahead.map_lookahead)."""

    horizon: int | str
    by: Columns | None = None

    _horizon = field_validator("horizon")(_parsed_horizon)


def dedup_step(df: dd.DataFrame, params: DedupParams, ctx: StepContext) -> dd.DataFrame:
    """``dedup``: :func:`pipelines.dedup.drop_consecutive_duplicates`."""
    return drop_consecutive_duplicates(
        df, subset=params.subset, by=params.by, nan_equal=params.nan_equal, time=ctx.time,
        keep=params.keep, count=params.count,
    )


def lookahead_step(df: dd.DataFrame, params: LookaheadParams, ctx: StepContext) -> dd.DataFrame:
    """``lookahead``: :func:`pipelines.lookahead.future_features`."""
    return future_features(
        df, params.horizon, params.columns, features=tuple(params.features), by=params.by,
        time=ctx.time, partial=params.partial, label=params.label,
        barrier=None if params.barrier is None else (params.barrier.up, params.barrier.down),
    )


def lookback_step(df: dd.DataFrame, params: LookbackParams, ctx: StepContext) -> dd.DataFrame:
    """``lookback``: :func:`pipelines.lookback.past_features`."""
    return lookback.past_features(
        df, params.horizon, params.columns, features=tuple(params.features), by=params.by,
        time=ctx.time, partial=params.partial,
    )


def _find_function(path: str) -> tuple[Callable[..., Any] | None, str]:
    """``"package.module:function"`` -> (the function, "") or (None, what is wrong)."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        return None, f"cannot import {path!r}: {type(error).__name__}: {error}"
    function = getattr(module, name, None)
    if not callable(function):
        return None, f"{module_name!r} has no function {name!r}"
    return function, ""


def import_function(path: str, key: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function; a one-line error naming ``key`` if not.

    Examples
    --------
    >>> import_function("os.path:join", "steps[0].map.function").__name__
    'join'
    >>> import_function("os.path:nope", "steps[0].map.function")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: steps[0].map.function: 'os.path' has no function 'nope'
    """
    function, problem = _find_function(path)
    if function is None:
        raise InputError(f"{key}: {problem}")
    return function


def _import_on_worker(path: str) -> str:
    return _find_function(path)[1]


def map_step(df: dd.DataFrame, params: MapParams, ctx: StepContext) -> dd.DataFrame:
    """``map``: apply a user function to every partition, in parallel.

    The function must be importable here and on every worker (it travels by reference).
    ``meta`` ({column: dtype}) describes its output; without it Dask infers it by running the
    function on a small sample frame.
    """
    key = f"{ctx.key}.function"
    function = import_function(params.function, key)
    meta = _meta_frame(params.meta, f"{ctx.key}.meta")
    try:
        if meta is None:
            return df.map_partitions(function, **params.kwargs)
        return df.map_partitions(function, **params.kwargs, meta=meta)
    except Exception as error:  # meta inference runs the function on an empty frame
        raise InputError(
            f"{key}: {params.function} failed on Dask's sample data while inferring its output "
            f"({type(error).__name__}: {error}); give meta: {{column: dtype}}"
        ) from None


def _meta_frame(meta: dict[str, str] | None, key: str) -> pd.DataFrame | None:
    """``meta: {column: dtype}`` -> an empty DataFrame of those columns (None stays None)."""
    if meta is None:
        return None
    try:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in meta.items()})
    except TypeError as error:
        raise InputError(f"{key}: {error}") from None


def lookahead_map_step(df: dd.DataFrame, params: LookaheadMapParams, ctx: StepContext) -> dd.DataFrame:
    """``lookahead_map``: :func:`pipelines.lookahead.map_lookahead` with a user function.

    ``function(frame, n_own, **kwargs)`` gets a partition's ``n_own`` rows followed by the future
    rows their windows need and returns the own rows' result. It must be importable here and on
    every worker; ``meta`` ({column: dtype}) describes its output, else it is run on a small fake
    partition to find it.
    """
    function = import_function(params.function, f"{ctx.key}.function")
    if params.kwargs:
        function = partial(function, **params.kwargs)
    return map_lookahead(df, function, params.horizon, by=params.by, time=ctx.time,
                         meta=_meta_frame(params.meta, f"{ctx.key}.meta"))


def check_map_on_workers(params: MapParams, client: Any, key: str) -> None:
    """The function of ``map`` or ``lookahead_map`` must import on every worker too (functions
    travel by reference)."""
    problems = client.run(_import_on_worker, params.function)
    bad = {worker: problem for worker, problem in problems.items() if problem}
    if bad:
        worker, problem = next(iter(bad.items()))
        raise InputError(f"{key}.function: on worker {worker}: {problem}")


register_step("dedup", DedupParams, dedup_step)
register_step("lookahead", LookaheadParams, lookahead_step)
register_step("map", MapParams, map_step, check=check_map_on_workers)
register_step("lookback", LookbackParams, lookback_step)
register_step("lookahead_map", LookaheadMapParams, lookahead_map_step, check=check_map_on_workers)
