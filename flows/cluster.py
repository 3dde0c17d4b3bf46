"""Which Dask cluster a run uses, and closing only what the run made.

Precedence (first match wins): a ``Client`` passed in (Python API) > ``--scheduler`` >
``DASK_SCHEDULER_ADDRESS`` > ``cluster.address`` > a cluster started from ``cluster:``: the
``cluster.manager`` class (any Dask cluster class, e.g. ``dask_jobqueue.SLURMCluster``, with
``cluster.options`` as its keyword arguments, then ``scale``/``adapt``), else a ``LocalCluster``
(``kind: cuda``: a ``dask_cuda.LocalCUDACluster``, one worker per GPU).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.security import Security

from flows.config import ClusterConfig
from flows.managers import (
    StartFailures, make_manager, manager_class, start_manager, wait_for_workers, workers_wanted,
)
from pipelines.errors import InputError

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


def _worker_kwargs(config: ClusterConfig) -> dict[str, Any]:
    """The settings a LocalCluster and a LocalCUDACluster share."""
    return {
        "threads_per_worker": config.threads_per_worker,
        "memory_limit": config.memory_limit,
        "dashboard_address": ":0" if config.dashboard else None,
    }


def _new_local_cluster(config: ClusterConfig) -> LocalCluster:
    if config.kind == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise InputError(
                "cluster.kind: cuda needs dask-cuda: pip install 'dask-flows[gpu]'"
            ) from None
        try:
            return LocalCUDACluster(**cuda_cluster_kwargs(config))
        except Exception as error:  # NVMLError and friends when there is no GPU
            raise InputError(f"cluster.kind: cuda: no usable GPU ({type(error).__name__}: {error})") from None
    return LocalCluster(n_workers=config.n_workers, processes=config.processes, **_worker_kwargs(config))


def cuda_cluster_kwargs(config: ClusterConfig) -> dict[str, Any]:
    """The keyword arguments of ``dask_cuda.LocalCUDACluster`` for ``kind: cuda``.

    dask-cuda's own settings in ``cluster.cuda`` (``rmm_pool_size``, ``CUDA_VISIBLE_DEVICES``,
    ``protocol: ucx``, ...) pass through unchanged and win over the defaults derived here; every
    worker declares one ``GPU`` resource, which the compare grid's tasks ask for.

    Examples
    --------
    >>> config = ClusterConfig(kind="cuda", cuda={"rmm_pool_size": "20GB", "protocol": "ucx"})
    >>> sorted(cuda_cluster_kwargs(config).items())  # doctest: +NORMALIZE_WHITESPACE
    [('dashboard_address', None), ('memory_limit', 'auto'), ('protocol', 'ucx'),
     ('resources', {'GPU': 1}), ('rmm_pool_size', '20GB'), ('threads_per_worker', 1)]
    """
    return {**_worker_kwargs(config), "threads_per_worker": config.threads_per_worker or 1,
            "resources": {"GPU": 1}, **config.cuda}


def describe_cluster(
    config: ClusterConfig, scheduler: str | None = None, client: Client | None = None
) -> str | None:
    """What ``--dry-run`` says about the cluster a manager would start; ``None`` without one.

    A manager with a ``job_script()`` (the dask-jobqueue ones) is made with no workers, so
    nothing is submitted, and its job script is shown (the scheduler address in it differs from
    run to run). Other managers are not started: they may create resources (pods, VMs).

    Examples
    --------
    >>> describe_cluster(ClusterConfig()) is None
    True
    >>> describe_cluster(ClusterConfig(manager="distributed.LocalCluster", scale=2))
    'cluster: distributed.LocalCluster, scale 2 workers (started by the run)'
    """
    if client is not None or config.manager is None or choose_cluster(config, scheduler).address:
        return None
    cls = manager_class(config.manager)
    wanted = f"adapt {config.adapt.minimum}-{config.adapt.maximum}" if config.adapt else f"scale {workers_wanted(config)}"
    head = f"cluster: {config.manager}, {wanted} workers"
    if not callable(getattr(cls, "job_script", None)):
        return f"{head} (started by the run)"
    cluster = make_manager(config, n_workers=0)
    try:
        return f"{head}; each job runs:\n{cluster.job_script().strip()}"
    finally:
        cluster.close()


@contextlib.contextmanager
def open_client(
    config: ClusterConfig, scheduler: str | None = None, client: Client | None = None
) -> Iterator[Client]:
    """Yield a ``Client`` for a run; close on exit only the client and cluster made here.

    A cluster from ``cluster.manager`` is made, scaled, and waited for (its workers, up to
    ``cluster.timeout``) before the client is yielded.

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
    failures = StartFailures()  # what a manager's event loop reports while starting workers
    with failures.watching() if config.manager else contextlib.nullcontext():
        cluster = start_manager(config) if config.manager else _start_local(config)
        try:
            with Client(cluster, set_as_default=False) as made:
                if config.manager:
                    wait_for_workers(made, config, failures)
                yield made
        except BaseException:
            with contextlib.suppress(Exception):  # the run's own error is the one to report
                cluster.close()
            raise
        cluster.close()
