"""The built-in table steps: ``dedup``, ``lookahead`` and ``map``, each a params model + a function.

Each is registered with :func:`flows.registry.register_step`, exactly as a new step would be: its
parameters model validates ``steps: [- NAME: {...}]`` and its function maps a lazy Dask DataFrame
to another by calling a :mod:`pipelines` step.

Examples
--------
>>> LookaheadParams(horizon="30s", columns=["price"]).features
['change']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

import dask.dataframe as dd
import pandas as pd
from pydantic import Field, field_validator

from flows.config import Columns, Strict
from flows.registry import StepContext, register_step
from pipelines.dedup import drop_consecutive_duplicates
from pipelines.errors import InputError
from pipelines.lookahead import FEATURES, future_features, parse_horizon


class DedupParams(Strict):
    """``dedup``: keep the first (last) row of each run of equal rows of a key (see pipelines.dedup)."""

    subset: list[str] | None = None
    by: Columns | None = None
    nan_equal: bool = True
    keep: Literal["first", "last"] = Field("first", description="first or last row of each run")
    count: str | None = Field(None, description="a new int64 column: the rows in the kept row's run")


class LookaheadParams(Strict):
    """``lookahead``: future-aware features over a rows or time horizon (see pipelines.lookahead)."""

    horizon: int | str
    columns: list[str] = Field(min_length=1)
    features: list[str] = Field(["change"], description=f"any of {', '.join(FEATURES)}")
    by: Columns | None = None
    partial: bool = False
    label: str | None = None

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
    meta: Any = None
    if params.meta is not None:
        try:
            meta = pd.DataFrame({c: pd.Series(dtype=d) for c, d in params.meta.items()})
        except TypeError as error:
            raise InputError(f"{ctx.key}.meta: {error}") from None
    try:
        if meta is None:
            return df.map_partitions(function, **params.kwargs)
        return df.map_partitions(function, **params.kwargs, meta=meta)
    except Exception as error:  # meta inference runs the function on an empty frame
        raise InputError(
            f"{key}: {params.function} failed on Dask's sample data while inferring its output "
            f"({type(error).__name__}: {error}); give meta: {{column: dtype}}"
        ) from None


def check_map_on_workers(params: MapParams, client: Any, key: str) -> None:
    """The ``map`` function must import on every worker too (functions travel by reference)."""
    problems = client.run(_import_on_worker, params.function)
    bad = {worker: problem for worker, problem in problems.items() if problem}
    if bad:
        worker, problem = next(iter(bad.items()))
        raise InputError(f"{key}.function: on worker {worker}: {problem}")


register_step("dedup", DedupParams, dedup_step)
register_step("lookahead", LookaheadParams, lookahead_step)
register_step("map", MapParams, map_step, check=check_map_on_workers)
