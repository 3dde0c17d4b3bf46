"""The registries of table steps and of flows: the one place a new step or flow is added.

A **step** is a parameters model (a pydantic model, unknown keys refused) and a function
``(df, params, context) -> df`` on a lazy Dask DataFrame. One :func:`register_step` call makes it
a config key (``steps: [- NAME: {params}]``, validated with its key path), a line of
``dask-flows list`` and a step of the table flow. The built-in steps (``dedup``, ``lookahead``,
``lookback``, ``map``, ``lookahead_map``) are registered in :mod:`flows.steps` the same way.

A **flow** is a config model (with a ``flow: Literal[NAME]`` field), a ``plan(config)`` that checks
the input and builds what will run without a cluster (its result has ``describe()`` for dry runs)
and a ``run(config, plan, client, *, show_progress)`` returning a :class:`flows.report.RunResult`.
One :func:`register_flow` call makes ``flow: NAME`` a valid config, runnable by :func:`flows.run`
and listed by ``dask-flows list``.

Examples
--------
>>> sorted(steps())
['dedup', 'lookahead', 'lookahead_map', 'lookback', 'map']
>>> sorted(flows())
['compare', 'table']
>>> steps()["dedup"].model.model_validate({"dedup": {"by": "symbol"}}).dedup.by
'symbol'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, create_model

from flows.config import Strict


@dataclass(frozen=True)
class StepContext:
    """What a step gets besides its params: the input's time column and its config key path."""

    time: str | None
    key: str  # e.g. "steps[1].lookahead", the prefix of its error messages


StepFunction = Callable[[Any, Any, StepContext], Any]


@dataclass(frozen=True)
class StepSpec:
    """A registered table step.

    Attributes
    ----------
    name : str
        The step's config key.
    params : type of pydantic.BaseModel
        Its parameters; the first line of its docstring is its description in ``dask-flows list``.
    function : callable
        ``(df, params, context) -> df``, lazy.
    model : type of pydantic.BaseModel
        ``{name: params}``: one item of a config's ``steps:`` list.
    check : callable or None
        ``(params, client, key) -> None``, run once a cluster is there and before computing (e.g.
        ``map`` checks its function imports on the workers).
    """

    name: str
    params: type[BaseModel]
    function: StepFunction
    model: type[BaseModel]
    check: Callable[[Any, Any, str], None] | None = None

    @property
    def description(self) -> str:
        """The first line of the params model's docstring, without a leading ``name:``."""
        lines = (self.params.__doc__ or "").strip().splitlines() or [""]
        return lines[0].split(": ", 1)[-1]


@dataclass(frozen=True)
class FlowSpec:
    """A registered flow: its config model, ``plan(config)`` and ``run(config, plan, client)``."""

    name: str
    config: type[BaseModel]
    plan: Callable[[Any], Any]
    run: Callable[..., Any]
    description: str


_STEPS: dict[str, StepSpec] = {}
_FLOWS: dict[str, FlowSpec] = {}
_builtins_loaded = False


def register_step(
    name: str,
    params: type[BaseModel],
    function: StepFunction,
    *,
    check: Callable[[Any, Any, str], None] | None = None,
) -> StepSpec:
    """Make ``function`` the table step ``name`` with parameters ``params``.

    Parameters
    ----------
    name
        The key users write: ``steps: [- NAME: {...}]``. Must not be registered yet.
    params
        A pydantic model of the parameters (subclass :class:`flows.config.Strict` to refuse
        unknown keys); a model whose fields all have defaults makes ``- NAME: {}`` valid.
    function
        ``(df, params, context: StepContext) -> df`` on lazy Dask DataFrames. Raise
        :class:`pipelines.errors.InputError` for bad input; the flow prefixes the step's key path.
    check
        Optional ``(params, client, key)`` run on the cluster before the compute.

    Returns
    -------
    StepSpec
    """
    if not name.isidentifier():
        raise ValueError(f"step name {name!r} is not an identifier")
    _load_builtins()
    if name in _STEPS:
        raise ValueError(f"a step named {name!r} is already registered")
    required = any(info.is_required() for info in params.model_fields.values())
    field = (params, ...) if required else (params, params())
    model = create_model(f"{name.title()}Step", __base__=Strict, **{name: field})
    spec = StepSpec(name, params, function, model, check)
    _STEPS[name] = spec
    return spec


def unregister_step(name: str) -> None:
    """Remove the step ``name`` (e.g. a step registered by a notebook or a test)."""
    _STEPS.pop(name, None)


def register_flow(
    name: str, config: type[BaseModel], plan: Callable[[Any], Any], run: Callable[..., Any], description: str
) -> FlowSpec:
    """Make ``flow: NAME`` runnable: ``config`` validates it, ``plan`` then ``run`` execute it."""
    _load_builtins()
    if name in _FLOWS:
        raise ValueError(f"a flow named {name!r} is already registered")
    spec = FlowSpec(name, config, plan, run, description)
    _FLOWS[name] = spec
    return spec


def steps() -> Mapping[str, StepSpec]:
    """The registered table steps, by name (read-only)."""
    _load_builtins()
    return MappingProxyType(_STEPS)


def flows() -> Mapping[str, FlowSpec]:
    """The registered flows, by name (read-only)."""
    _load_builtins()
    return MappingProxyType(_FLOWS)


def _load_builtins() -> None:
    """Register the built-in steps and flows, once, on first use (they import this module)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    import flows.steps  # noqa: F401 - registers dedup, lookahead, map, lookback, lookahead_map
    from flows.config import CompareFlowConfig, TableFlowConfig

    register_flow("table", TableFlowConfig, _lazy("flows.table:plan_table"), _lazy("flows.table:run_table"),
                  "input -> steps -> output (+ summary)")
    register_flow("compare", CompareFlowConfig, _lazy("flows.compare:plan_compare"),
                  _lazy("flows.compare:run_compare"), "matrices -> all-against-all grid -> zarr")


def _lazy(path: str) -> Callable[..., Any]:
    """``module:function``, imported when first called (the flow modules import this one)."""
    module_name, _, name = path.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module_name), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call
