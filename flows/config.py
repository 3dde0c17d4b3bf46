"""Pydantic models of a YAML run config, and the loading that turns mistakes into one-line errors.

A config names a flow (``table``, ``compare`` or any flow of :mod:`flows.registry`), the cluster it
runs on, its input, its steps and its output. Unknown keys are refused everywhere. Every problem is reported as
``path.to.key: what is wrong``, e.g. ``steps[1].lookahead.horizon: '30x' is not a row count or a
time span like '30s'``.

Examples
--------
>>> cfg = parse_config({"flow": "table", "input": {"format": "synthetic", "rows": 100},
...                     "output": {"path": "out/x"}})
>>> cfg.cluster.n_workers, cfg.cluster.processes, cfg.input.format
(1, False, 'synthetic')
>>> parse_config({"flow": "table", "inptu": {}})
Traceback (most recent call last):
...
flows.config.ConfigError: <config>: input: field required; inptu: unknown key
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipelines.errors import InputError


class ConfigError(InputError):
    """A config that cannot run: the message lists ``path.to.key: problem`` items on one line."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Columns = str | list[str]


# ----------------------------------------------------------------------------------------------
# cluster
class TLSConfig(Strict):
    """Certificates for a ``tls://`` scheduler address (paths on this machine)."""

    ca_file: str
    cert: str
    key: str


class AdaptConfig(Strict):
    """``cluster.adapt``: let a cluster manager grow and shrink between these worker counts."""

    minimum: int = Field(0, ge=0)
    maximum: int = Field(..., ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> AdaptConfig:
        if self.minimum > self.maximum:
            raise _key_error("maximum", self.maximum, f"is below minimum ({self.minimum})")
        return self


# LocalCluster settings, and how a run reaches its workers without a manager
_LOCAL_ONLY = ("kind", "address", "n_workers", "threads_per_worker", "memory_limit", "processes",
               "dashboard", "tls")
_MANAGER_ONLY = ("options", "scale", "adapt")
_NOT_WITH_MANAGER = (
    "a LocalCluster setting: with cluster.manager give workers as cluster.scale or cluster.adapt, "
    "and the rest in cluster.options",
    "for an existing scheduler: give cluster.address or cluster.manager, not both",
)


def _key_error(key: str, value: Any, message: str) -> ValidationError:
    """A validation error located at ``key`` of the model being validated (not at the model)."""
    detail = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(key,), input=value)
    return ValidationError.from_exception_data("config", [detail])


class ClusterConfig(Strict):
    """Where the work runs: a LocalCluster (default), an existing scheduler, LocalCUDACluster, or a
    cluster manager (any importable Dask cluster class, e.g. ``dask_jobqueue.SLURMCluster``).

    Examples
    --------
    >>> ClusterConfig(manager="dask_jobqueue.SLURMCluster", options={"cores": 1}, scale=2).scale
    2
    >>> flow = {"flow": "table", "input": {"format": "synthetic"}, "output": {"path": "x"}}
    >>> parse_config({**flow, "cluster": {"manager": "dask_jobqueue.SLURMCluster", "n_workers": 2}})
    Traceback (most recent call last):
    ...
    flows.config.ConfigError: <config>: cluster.n_workers: a LocalCluster setting: with cluster.manager give workers as cluster.scale or cluster.adapt, and the rest in cluster.options
    """

    kind: Literal["local", "cuda"] = "local"
    address: str | None = None
    # the default: one worker in the run's own process with a thread per core; the steps' kernels
    # release the GIL (Arrow I/O, NumPy, compiled loops), and a worker process would pay its
    # start, imports and first page faults on every run (BENCHMARKS.md)
    n_workers: int | None = Field(1, ge=1)
    threads_per_worker: int | None = Field(None, ge=1)  # None: the machine's cores / n_workers
    memory_limit: str | int | None = "auto"
    processes: bool = False
    dashboard: bool = False
    timeout: str = "10s"
    tls: TLSConfig | None = None
    manager: str | None = None
    options: dict[str, Any] = {}
    scale: int | None = Field(None, ge=0)
    adapt: AdaptConfig | None = None
    cuda: dict[str, Any] = {}  # kind: cuda: dask_cuda.LocalCUDACluster's own keyword arguments

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        from dask.utils import parse_timedelta

        try:
            parse_timedelta(value)
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"{value!r} is not a duration like '30s', '10m' or '1h'") from None
        return value

    @field_validator("manager")
    @classmethod
    def _manager(cls, value: str | None) -> str | None:
        if value is None:
            return None
        module, _, name = value.rpartition(":" if ":" in value else ".")
        if not module or not name.isidentifier():
            raise ValueError(f"{value!r} is not a class path like 'dask_jobqueue.SLURMCluster'")
        return value

    @model_validator(mode="after")
    def _manager_or_local(self) -> ClusterConfig:
        given = self.model_fields_set
        if "cuda" in given and self.kind != "cuda":
            raise _key_error("cuda", self.cuda, "dask-cuda settings need cluster.kind: cuda")
        if self.manager is None:
            for key in _MANAGER_ONLY:
                if key in given:
                    raise _key_error(key, getattr(self, key), "needs cluster.manager (a cluster class to start)")
            return self
        for key in _LOCAL_ONLY:
            if key in given:
                raise _key_error(key, getattr(self, key), _NOT_WITH_MANAGER[key in ("address", "tls")])
        if self.scale is not None and self.adapt is not None:
            raise _key_error("adapt", self.adapt, "give cluster.scale or cluster.adapt, not both")
        return self


# ----------------------------------------------------------------------------------------------
# table inputs
class _TableInput(Strict):
    time: str | None = None
    sort: bool = False


class ParquetInput(_TableInput):
    """Parquet files: a path, a folder, a glob or an fsspec URL (or a list of them)."""

    format: Literal["parquet"]
    path: str | list[str]
    columns: list[str] | None = None
    blocksize: str | int | None = Field(
        "64MiB",
        description="row groups per partition: about this much (uncompressed) each; null: one partition per file",
    )
    storage_options: dict[str, Any] = {}

    @field_validator("blocksize")
    @classmethod
    def _blocksize(cls, value: str | int | None) -> str | int | None:
        from dask.utils import parse_bytes

        if value is not None and parse_bytes(value) <= 0:  # parse_bytes raises ValueError for "12x"
            raise ValueError(f"must be a positive size such as 128MiB, got {value!r}")
        return value


class CsvInput(_TableInput):
    """CSV files: a path, a glob or an fsspec URL (or a list of them)."""

    format: Literal["csv"]
    path: str | list[str]
    blocksize: str | int | None = "64MB"
    storage_options: dict[str, Any] = {}


class SyntheticTicks(_TableInput):
    """Seeded tick-like data: symbols, irregular times, runs of duplicates, some NaN."""

    format: Literal["synthetic"]
    rows: int = Field(100_000, ge=0)
    symbols: int = Field(10, ge=1)
    npartitions: int = Field(8, ge=1)
    seed: int = 0
    start: str = "2026-01-02 09:30:00"
    duplicate_rate: float = Field(0.2, ge=0, lt=1)
    nan_rate: float = Field(0.01, ge=0, lt=1)
    time: str | None = "ts"


TableInput = Annotated[ParquetInput | CsvInput | SyntheticTicks, Field(discriminator="format")]


# ----------------------------------------------------------------------------------------------
# table steps: each a {name: params} model from the step registry (flows.registry, flows.steps)
def _validate_step(value: Any) -> BaseModel:
    """One item of ``steps:``: ``{name: params}`` of a registered step, validated by its model."""
    from flows.registry import steps

    registered = steps()
    if isinstance(value, BaseModel) and any(type(value) is s.model for s in registered.values()):
        return value
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in registered):
        raise PydanticCustomError(
            "unknown_step",
            f"not a step: use one of {', '.join(registered)} as the single key of each step",
        )
    return registered[next(iter(value))].model.model_validate(value)


Step = Annotated[Any, PlainValidator(_validate_step)]


def step_name(step: BaseModel) -> str:
    """The name of a validated step: its single key."""
    return next(iter(type(step).model_fields))


class SummaryConfig(Strict):
    """A ``summary:`` block: mergeable moments at the end of a table flow."""

    columns: list[str] | None = None
    by: Columns | None = None
    state: str | None = Field(None, description="a folder (path or URL) of batch files, merged on read")
    storage_options: dict[str, Any] = {}
    split_every: int = Field(8, ge=2)
    ddof: int = Field(1, ge=0)


class OutputConfig(Strict):
    """Where results are published (atomically); existing output is kept unless ``overwrite``.

    ``compression`` and ``dictionary`` are the Parquet writer's (table flow): the codec of every
    column, and which columns are dictionary-encoded (``true``: all, ``false``: none, or a list
    of columns, e.g. ``[symbol]``: a dictionary pays for columns of few distinct values; building
    one for a float or time column costs write time for nothing).
    """

    path: str
    overwrite: bool = False
    storage_options: dict[str, Any] = {}
    compression: Literal["snappy", "zstd", "lz4", "gzip", "brotli", "none"] = Field(
        "snappy", description="Parquet codec of the table flow's output (none: uncompressed)")
    dictionary: bool | list[str] = Field(
        True, description="dictionary-encoded output columns: true (all), false, or a list")


class TableFlowConfig(Strict):
    """``flow: table``: input -> steps in order -> Parquet output (+ optional summary)."""

    flow: Literal["table"]
    cluster: ClusterConfig = ClusterConfig()
    input: TableInput
    steps: list[Step] = []
    summary: SummaryConfig | None = None
    output: OutputConfig | None = None
    hold_partitions: Literal["auto", True, False] = Field(
        "auto",
        description="scans (dedup, lookahead, lookback) compute each partition once and may hold them all "
        "(true), or recompute a copy per summary, memory bounded (false); auto: hold when the input's "
        "estimated size x the number of scans is at most 25% of the workers' memory",
    )

    @model_validator(mode="after")
    def _needs_a_result(self) -> TableFlowConfig:
        if self.output is None and self.summary is None:
            raise ValueError("output: field required (or a summary: block)")
        return self


# ----------------------------------------------------------------------------------------------
# compare
class NpyFolderInput(Strict):
    format: Literal["npy"]
    path: str
    storage_options: dict[str, Any] = {}  # for a URL path (s3://...): credentials, endpoint


class NpzInput(Strict):
    format: Literal["npz"]
    path: str
    storage_options: dict[str, Any] = {}  # for a URL path (s3://...): credentials, endpoint


class ZarrInput(Strict):
    format: Literal["zarr"]
    path: str
    storage_options: dict[str, Any] = {}  # for a URL path (s3://...): credentials, endpoint


class SyntheticMatrices(Strict):
    format: Literal["synthetic"]
    n: int = Field(200, ge=1)
    rows: int = Field(20, ge=1)
    min_len: int = Field(150, ge=1)
    max_len: int = Field(250, ge=1)
    seed: int = 0


MatrixInput = Annotated[
    NpyFolderInput | NpzInput | ZarrInput | SyntheticMatrices, Field(discriminator="format")
]


class CompareOptions(Strict):
    """Options of the all-against-all grid (see flows.compare.all_pairs)."""

    tile: int | None = Field(None, ge=1)  # None: 256 on CPU, 1024 on GPU
    normalize: Literal["zscore"] | None = None
    top_k: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    window: int | None = Field(None, ge=1)  # the best pair of w-column windows instead of whole shifts
    kernel: str | None = None  # "module:function", f(list_of_a, list_of_b) -> len(a) x len(b) scores
    symmetric: bool = True  # false: a user kernel's full square

    @field_validator("kernel")
    @classmethod
    def _kernel(cls, value: str | None) -> str | None:
        if value is not None and not all(value.partition(":")[::2]):
            raise ValueError(f"{value!r} is not of the form 'module:function'")
        return value


class CompareFlowConfig(Strict):
    """``flow: compare``: matrices -> all-against-all grid -> Zarr."""

    flow: Literal["compare"]
    cluster: ClusterConfig = ClusterConfig()
    input: MatrixInput
    compare: CompareOptions = CompareOptions()
    output: OutputConfig


FlowConfig = BaseModel  # a validated config: one of the registered flows' models (flows.registry)


# ----------------------------------------------------------------------------------------------
# loading
def _location(loc: tuple[Any, ...]) -> str:
    """``('steps', 1, 'lookahead', 'lookahead', 'horizon')`` -> ``steps[1].lookahead.horizon``.

    Pydantic puts union tags into locations; they repeat the key that follows, so they go.
    """
    from flows.registry import flows

    flow_names = set(flows())
    parts: list[str] = []
    previous: Any = None
    for item in loc:
        if not parts and item in flow_names:
            continue  # the flow discriminator's tag
        if isinstance(item, str) and item.startswith("function-"):
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item != previous or isinstance(previous, int):
            parts.append(("." if parts else "") + str(item))
        previous = item
    return "".join(parts) or "<config>"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "field required"
    if kind == "literal_error":
        return f"{error['input']!r} is not one of {ctx['expected']}"
    if kind == "union_tag_invalid":
        return f"{ctx['tag']!r} is not one of {ctx['expected_tags']}"
    if kind == "union_tag_not_found":
        return "field required"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    message = error["msg"]
    if "input" in error and kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message} (got {error['input']!r})"
    return message


def format_validation_error(error: ValidationError, source: str = "<config>") -> str:
    """One line listing every problem as ``path: message``, prefixed with the config's name."""
    seen: dict[str, str] = {}
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += (str(item["ctx"]["discriminator"]).strip("'"),)  # the tag's own key
        path = _location(loc)
        seen.setdefault(path, _message(item))
    items = "; ".join(f"{path}: {message}" for path, message in seen.items())
    return f"{source}: {items}"


def _is_flow_config(value: Any) -> bool:
    from flows.registry import flows

    return isinstance(value, tuple(spec.config for spec in flows().values()))


def parse_config(raw: Any, source: str = "<config>") -> FlowConfig:
    """Validate a config mapping into its flow's model (see flows.registry), or raise :class:`ConfigError`."""
    from flows.registry import flows

    if _is_flow_config(raw):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a run config is a mapping with a 'flow:' key, got {type(raw).__name__}")
    flow = raw.get("flow")
    registered = flows()
    if flow not in registered:
        raise ConfigError(f"{source}: flow: {flow!r} is not one of {sorted(registered)}")
    try:
        return registered[flow].config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """``yaml.safe_load`` of a file, with missing files and YAML syntax errors as ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a copy of a raw config.

    List items are addressed by their index: ``steps.1.lookahead.horizon=60s``.

    Examples
    --------
    >>> apply_overrides({"steps": [{"dedup": {}}, {"lookahead": {"horizon": "30s"}}]},
    ...                 ["steps.1.lookahead.horizon=60s", "cluster.n_workers=4"])
    {'steps': [{'dedup': {}}, {'lookahead': {'horizon': '60s'}}], 'cluster': {'n_workers': 4}}
    """
    result = copy.deepcopy(raw)
    items = overrides.items() if isinstance(overrides, dict) else map(_split_override, overrides)
    for dotted, value in items:
        node: Any = result
        keys = dotted.split(".")
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"--set {dotted}: {where}: no list item {key!r} (has {len(node)})")
                key = int(key)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {where}: cannot set a key inside a {type(node).__name__}")
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and node.get(key) is None:
                    node[key] = {}
                node = node[key]
    return result


def _split_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {text}: expected dotted.key=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text}: the value is not valid YAML") from None


def load_config(
    config: str | os.PathLike[str] | dict[str, Any] | FlowConfig,
    overrides: list[str] | dict[str, Any] | None = None,
) -> FlowConfig:
    """A validated config from a YAML path, a mapping or a model, with overrides applied."""
    if _is_flow_config(config):
        if not overrides:
            return config
        raw, source = config.model_dump(mode="python", exclude_unset=True), "<config>"
    elif isinstance(config, dict):
        raw, source = config, "<config>"
    else:
        raw, source = read_yaml(config), str(config)
    if overrides:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: a run config is a mapping with a 'flow:' key")
        raw = apply_overrides(raw, overrides)
    return parse_config(raw, source)
