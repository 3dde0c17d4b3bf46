"""Which Dask cluster a run uses, and closing only what the run made.

Precedence (first match wins): a ``Client`` passed in (Python API) > ``--scheduler`` >
``DASK_SCHEDULER_ADDRESS`` > ``cluster.address`` > a cluster started from ``cluster:``: the
``cluster.manager`` class (any Dask cluster class, e.g. ``dask_jobqueue.SLURMCluster``, with
``cluster.options`` as its keyword arguments, then ``scale``/``adapt``), else a ``LocalCluster``
(``kind: cuda``: a ``dask_cuda.LocalCUDACluster``, one worker per GPU).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import dask
from distributed import Client, LocalCluster
from distributed.client import WorkerStartTimeoutError
from distributed.deploy import Cluster
from distributed.security import Security

from flows.config import ClusterConfig
from pipelines.errors import InputError, first_line

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@dataclass(frozen=True)
class ClusterChoice:
    """Where a run's work goes: an address to connect to, or a cluster to start."""

    address: str | None
    source: str  # "--scheduler", "DASK_SCHEDULER_ADDRESS", "cluster.address" or "cluster"


def choose_cluster(config: ClusterConfig, scheduler: str | None = None) -> ClusterChoice:
    """Apply the precedence rules (without a Client) and say which source won.

    Examples
    --------
    >>> choose_cluster(ClusterConfig(address="tcp://10.0.0.5:8786"), scheduler="tcp://h:1")
    ClusterChoice(address='tcp://h:1', source='--scheduler')
    """
    if scheduler:
        return ClusterChoice(scheduler, "--scheduler")
    if os.environ.get(SCHEDULER_ENV):
        return ClusterChoice(os.environ[SCHEDULER_ENV], SCHEDULER_ENV)
    if config.address:
        return ClusterChoice(config.address, "cluster.address")
    return ClusterChoice(None, "cluster")


def security_for(config: ClusterConfig, address: str) -> Security | None:
    """A ``Security`` for ``tls://`` addresses from ``cluster.tls``; a clear error if it lacks."""
    if not address.startswith("tls://"):
        return None
    if config.tls is None:
        raise InputError(
            f"scheduler {address}: a tls:// address needs cluster.tls with ca_file, cert and key"
        )
    for name in ("ca_file", "cert", "key"):
        path = getattr(config.tls, name)
        if not os.path.exists(path):
            raise InputError(f"cluster.tls.{name}: file not found: {path}")
    return Security(
        tls_ca_file=config.tls.ca_file,
        tls_client_cert=config.tls.cert,
        tls_client_key=config.tls.key,
        require_encryption=True,
    )


def _connect(address: str, config: ClusterConfig, source: str) -> Client:
    security = security_for(config, address)
    try:
        return Client(address, timeout=config.timeout, security=security, set_as_default=False)
    except OSError as error:  # includes TimeoutError and CommClosedError
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "Timed out" in detail or isinstance(error, TimeoutError):
            detail = f"not reachable within {config.timeout}"
        raise InputError(f"scheduler {address} (from {source}): {detail}") from None


def worker_environ() -> dict[str, object]:
    """Environment of the worker processes we start: distributed's, without its malloc trimming.

    distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` so freed memory returns to the OS sooner;
    for pandas work on large partitions that turns every large allocation into fresh page
    faults, and measured here it made the table flow 1.7x slower (benchmarks/bench_table.py).
    Memory still stays bounded by ``memory_limit`` through Dask's spilling.
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def _start_local(config: ClusterConfig) -> LocalCluster:
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
        return _new_local_cluster(config)


def _new_local_cluster(config: ClusterConfig) -> LocalCluster:
    kwargs = dict(
        n_workers=config.n_workers,
        threads_per_worker=config.threads_per_worker,
        memory_limit=config.memory_limit,
        dashboard_address=":0" if config.dashboard else None,
    )
    if config.kind == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise InputError(
                "cluster.kind: cuda needs dask-cuda: pip install 'dask-flows[gpu]'"
            ) from None
        try:
            return LocalCUDACluster(
                threads_per_worker=config.threads_per_worker,
                memory_limit=config.memory_limit,
                dashboard_address=kwargs["dashboard_address"],
                resources={"GPU": 1},
            )
        except Exception as error:  # NVMLError and friends when there is no GPU
            raise InputError(f"cluster.kind: cuda: no usable GPU ({type(error).__name__}: {error})") from None
    return LocalCluster(processes=config.processes, **kwargs)


def manager_class(path: str) -> type[Cluster]:
    """Import ``cluster.manager`` (``package.module.Class`` or ``package.module:Class``).

    Examples
    --------
    >>> manager_class("distributed.LocalCluster").__name__
    'LocalCluster'
    >>> manager_class("distributed.Client")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: cluster.manager: 'distributed.Client' is not a Dask cluster class
    """
    module_name, _, name = path.rpartition(":" if ":" in path else ".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raises while importing
        raise InputError(f"cluster.manager: cannot import {path!r}: {type(error).__name__}: "
                         f"{first_line(error)}") from None
    found = getattr(module, name, None)
    if found is None:
        raise InputError(f"cluster.manager: {module_name!r} has no {name!r}")
    if not (isinstance(found, type) and issubclass(found, Cluster)):
        raise InputError(f"cluster.manager: {path!r} is not a Dask cluster class")
    return found


def _make_manager(config: ClusterConfig, **overrides: object) -> Cluster:
    """``manager(**options)``: its own error, as one line naming ``cluster.options``."""
    cls = manager_class(str(config.manager))
    try:
        return cls(**{**config.options, **overrides})
    except Exception as error:  # TypeError for unknown keywords, ValueError, the manager's own
        raise InputError(f"cluster.options: {config.manager}: {type(error).__name__}: "
                         f"{first_line(error)}") from None


def workers_wanted(config: ClusterConfig) -> int:
    """How many workers a run waits for: ``scale``, ``adapt.minimum``, else one."""
    if config.scale is not None:
        return config.scale
    return config.adapt.minimum if config.adapt is not None else 1


def _start_manager(config: ClusterConfig) -> Cluster:
    cluster = _make_manager(config)
    try:
        if config.adapt is not None:
            cluster.adapt(minimum=config.adapt.minimum, maximum=config.adapt.maximum)
        elif config.scale is not None:
            cluster.scale(config.scale)
    except BaseException:
        cluster.close()
        raise
    return cluster


def wait_for_workers(client: Client, config: ClusterConfig) -> None:
    """Wait up to ``cluster.timeout`` for the manager's workers; one line naming the key if not."""
    wanted = workers_wanted(config)
    try:
        client.wait_for_workers(wanted, timeout=config.timeout)
    except (WorkerStartTimeoutError, TimeoutError):
        running = len(client.scheduler_info(n_workers=-1)["workers"])
        raise InputError(
            f"cluster.timeout: {running} of {wanted} workers of {config.manager} running after "
            f"{config.timeout} (jobs still queued? raise cluster.timeout; else see the manager's logs)"
        ) from None


def describe_cluster(
    config: ClusterConfig, scheduler: str | None = None, client: Client | None = None
) -> str | None:
    """What ``--dry-run`` says about the cluster a manager would start; ``None`` without one.

    A manager with a ``job_script()`` (the dask-jobqueue ones) is made with no workers, so
    nothing is submitted, and its job script is shown (the scheduler address in it differs from
    run to run). Other managers are not started: they may create resources (pods, VMs).
    """
    if client is not None or config.manager is None or choose_cluster(config, scheduler).address:
        return None
    cls = manager_class(config.manager)
    wanted = f"adapt {config.adapt.minimum}-{config.adapt.maximum}" if config.adapt else f"scale {workers_wanted(config)}"
    head = f"cluster: {config.manager}, {wanted} workers"
    if not callable(getattr(cls, "job_script", None)):
        return f"{head} (started by the run)"
    cluster = _make_manager(config, n_workers=0)
    try:
        return f"{head}; each job runs:\n{cluster.job_script().strip()}"
    finally:
        cluster.close()


@contextlib.contextmanager
def open_client(
    config: ClusterConfig, scheduler: str | None = None, client: Client | None = None
) -> Iterator[Client]:
    """Yield a ``Client`` for a run; close on exit only the client and cluster made here.

    Parameters
    ----------
    config
        The run config's ``cluster:`` block.
    scheduler
        An address from ``--scheduler`` (wins over the environment and the config).
    client
        A client of the caller's (a notebook's): used as is and never closed.
    """
    if client is not None:
        yield client
        return
    choice = choose_cluster(config, scheduler)
    if choice.address is not None:
        made = _connect(choice.address, config, choice.source)
        try:
            yield made
        finally:
            made.close()
        return
    cluster = _start_manager(config) if config.manager else _start_local(config)
    try:
        with Client(cluster, set_as_default=False) as made:
            if config.manager:
                wait_for_workers(made, config)
            yield made
    finally:
        cluster.close()
