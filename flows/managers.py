"""Cluster managers from config: ``cluster.manager`` (any Dask cluster class) made with
``cluster.options``, scaled, and waited for.

A manager is e.g. ``dask_jobqueue.SLURMCluster`` (workers as batch jobs) or
``dask_kubernetes.operator.KubeCluster`` (workers as pods). Everything it does (submitting jobs,
scaling, cancelling) is its own; this module only makes it, asks for workers and waits.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Iterator

from dask.utils import parse_timedelta
from distributed import Client
from distributed.client import WorkerStartTimeoutError
from distributed.deploy import Cluster

from flows.config import ClusterConfig
from pipelines.errors import InputError, first_line

# where Dask's event loop logs a worker that failed to start (e.g. ``sbatch`` refusing a job)
LOOP_LOGGER = "tornado.application"


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


def make_manager(config: ClusterConfig, **overrides: object) -> Cluster:
    """``manager(**options)``; its own error becomes one line naming ``cluster.options``."""
    cls = manager_class(str(config.manager))
    try:
        return cls(**{**config.options, **overrides})
    except Exception as error:  # TypeError for unknown keywords, ValueError, the manager's own
        raise InputError(f"cluster.options: {config.manager}: {type(error).__name__}: "
                         f"{first_line(error)}") from None


def workers_wanted(config: ClusterConfig) -> int:
    """How many workers a run waits for: ``scale``, ``adapt.minimum``, else one.

    >>> workers_wanted(ClusterConfig(manager="a.B", adapt={"minimum": 2, "maximum": 8}))
    2
    """
    if config.scale is not None:
        return config.scale
    return config.adapt.minimum if config.adapt is not None else 1


class StartFailures(logging.Filter):
    """Collects the exceptions Dask's event loop logs while a manager starts its workers.

    A filter on that logger, so it sees every error record whatever the logger's level (the
    CLI silences it) and lets through only what the level let through before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []
        self.shown = logging.ERROR  # the logger's level before watching

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])
        return record.levelno >= self.shown

    @contextlib.contextmanager
    def watching(self) -> Iterator[StartFailures]:
        """Watch the event loop's logger for the duration."""
        logger = logging.getLogger(LOOP_LOGGER)
        level = logger.level
        self.shown = logger.getEffectiveLevel()
        logger.addFilter(self)
        logger.setLevel(min(self.shown, logging.ERROR))
        try:
            yield self
        finally:
            logger.removeFilter(self)
            logger.setLevel(level)


def start_manager(config: ClusterConfig) -> Cluster:
    """Make the manager and ask for ``scale`` workers (or ``adapt`` between two counts)."""
    cluster = make_manager(config)
    try:
        if config.adapt is not None:
            cluster.adapt(minimum=config.adapt.minimum, maximum=config.adapt.maximum)
        elif config.scale is not None:
            cluster.scale(config.scale)
    except BaseException:
        cluster.close()
        raise
    return cluster


def wait_for_workers(client: Client, config: ClusterConfig, failures: StartFailures) -> None:
    """Wait up to ``cluster.timeout`` for the manager's workers (``Client.wait_for_workers``).

    It waits in steps of a second, so that a start the manager reports as failed (collected in
    ``failures``: ``sbatch`` refusing a job for a bad queue or too much memory) ends the wait at
    once with its message, one line naming ``cluster.options``; workers still missing at the
    deadline name ``cluster.timeout``.
    """
    wanted = workers_wanted(config)
    deadline = time.monotonic() + parse_timedelta(config.timeout)
    while True:
        try:
            client.wait_for_workers(wanted, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except (WorkerStartTimeoutError, TimeoutError):
            pass
        if failures.errors:
            error = failures.errors[0]
            raise InputError(f"cluster.options: {config.manager} could not start its workers: "
                             f"{type(error).__name__}: {error}")
        if time.monotonic() >= deadline:
            running = len(client.scheduler_info(n_workers=-1)["workers"])
            raise InputError(
                f"cluster.timeout: {running} of {wanted} workers of {config.manager} running after "
                f"{config.timeout} (jobs still queued? raise cluster.timeout)"
            )
