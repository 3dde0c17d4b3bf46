"""Shared fixtures: a real LocalCluster, and a real `dask scheduler` + 2 `dask worker` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running tests (deselect with -m 'not slow')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for CLI/worker subprocesses: the tests' helper modules importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    env.update(extra)
    return env


class DaskProcesses:
    """A `dask scheduler` and `dask worker` processes on 127.0.0.1 (real processes, real TCP)."""

    def __init__(self, n_workers: int = 2, memory_limit: str = "2GiB", nanny: bool = True,
                 protocol: str = "tcp", tls_args: list[str] | tuple[str, ...] = ()):
        self.port = free_port()
        self.address = f"{protocol}://127.0.0.1:{self.port}"
        self.env = subprocess_env()
        self.tls_args = list(tls_args)
        self.scheduler = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-dashboard", "--protocol", protocol, *self.tls_args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.workers = [self.start_worker(memory_limit, nanny) for _ in range(n_workers)]
        self.wait_for_workers(n_workers)

    def start_worker(self, memory_limit: str = "2GiB", nanny: bool = True) -> subprocess.Popen:
        """A `dask worker` process; without a nanny, its pid is the worker itself (to SIGKILL)."""
        return subprocess.Popen(
            [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--nworkers", "1",
             "--memory-limit", memory_limit, "--no-dashboard", "--host", "127.0.0.1",
             *([] if nanny else ["--no-nanny"]), *self.tls_args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def security(self):
        if not self.tls_args:
            return None
        from distributed.security import Security

        args = dict(zip(self.tls_args[::2], self.tls_args[1::2]))
        return Security(tls_ca_file=args["--tls-ca-file"], tls_client_cert=args["--tls-cert"],
                        tls_client_key=args["--tls-key"], require_encryption=True)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.time() + timeout
        while True:
            try:
                with Client(self.address, timeout="5s", security=self.security()) as client:
                    client.wait_for_workers(n, timeout=max(1, deadline - time.time()))
                    return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def dask_processes():
    """A real scheduler and two workers as subprocesses, shared by the session's tests."""
    cluster = DaskProcesses(n_workers=2)
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def local_client():
    """A real LocalCluster (2 worker processes, 1 thread each) and a Client to it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:
            yield client


def run_cli(*args: str, cwd: Path | str = REPO, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """Run the `dask-flows` console script as a user would; capture its output."""
    return subprocess.run(
        [str(BIN / "dask-flows"), *args], cwd=cwd, env=subprocess_env(**env),
        capture_output=True, text=True, timeout=timeout,
    )
