"""Faults on process-based clusters (``processes: true``): a SIGKILLed worker process,
Ctrl-C and SIGKILL of the CLI, and a worker killed while the summary is being reduced.

The helpers are test_reliability's (which runs the same faults on thread-based clusters).
"""

from __future__ import annotations

import os
import signal
import time

import pandas as pd
import psutil
import pytest
from dask.dataframe.utils import assert_eq
from test_reliability import TABLE, finish, markers, reference, slowed, start_cli, wait_for_markers  # noqa: F401

from flows.state import StateStore

PROCESSES = {**TABLE, "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": True}}
SUMMARY = {"columns": ["price", "price_change_20s"], "by": "symbol"}


def worker_pids(markers) -> list[int]:  # noqa: F811
    """The worker processes that started a slowed task (the marker files name their pid)."""
    return sorted({int(name.split("-")[0]) for name in os.listdir(markers)})


def kill_worker(markers, process) -> int:  # noqa: F811
    """SIGKILL one worker process of the CLI's own LocalCluster (a grandchild of the CLI)."""
    children = {p.pid for p in psutil.Process(process.pid).children(recursive=True)}
    pid = next(p for p in worker_pids(markers) if p in children)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_table_flow_survives_a_killed_worker_process(tmp_path, markers):  # noqa: F811
    expected = reference(tmp_path, PROCESSES)
    process = start_cli(tmp_path, slowed(PROCESSES, markers))
    wait_for_markers(markers, 4, process)
    kill_worker(markers, process)
    code, _, err = finish(process)
    assert code == 0, err
    assert_eq(pd.read_parquet(tmp_path / "out/features"), expected, check_index=False)


def test_worker_killed_during_the_summary_reduction(tmp_path, markers):  # noqa: F811
    """Killed once every partition has started: the summary's tree reduction is under way and
    partial moments held by that worker are lost. The run recomputes them and ends right."""
    config = {**PROCESSES, "summary": {**SUMMARY, "split_every": 2}}
    expected = reference(tmp_path, {**config, "summary": {**config["summary"], "state": "reference.json"}})
    killed = {**config, "summary": {**config["summary"], "state": "killed.json"}}
    process = start_cli(tmp_path, slowed(killed, markers, seconds=0.2))
    wait_for_markers(markers, TABLE["input"]["npartitions"], process)
    kill_worker(markers, process)
    code, _, err = finish(process)
    assert code == 0, err
    assert_eq(pd.read_parquet(tmp_path / "out/features"), expected, check_index=False)
    states = [StateStore.open(str(tmp_path / n), {}).read() for n in ("killed.json", "reference.json")]
    assert_eq(states[0].to_frame(), states[1].to_frame())


def wait_until_gone(pids: set[int], timeout: float) -> set[int]:
    """The processes among ``pids`` still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
    return alive


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_on_processes_keeps_the_previous_output(tmp_path, markers, sig):  # noqa: F811
    """Ctrl-C: exit 130, nothing published, no temp output. SIGKILL: the previous output stays
    readable, the worker processes end by themselves, and the next run succeeds."""
    config = {**PROCESSES, "output": {"path": "out/features", "overwrite": True}}
    assert finish(start_cli(tmp_path, config))[0] == 0
    before = pd.read_parquet(tmp_path / "out/features")
    files = sorted(os.listdir(tmp_path / "out/features"))

    process = start_cli(tmp_path, slowed(config, markers))
    wait_for_markers(markers, 2, process)
    children = {p.pid for p in psutil.Process(process.pid).children(recursive=True)}
    process.send_signal(sig)
    code, _, err = finish(process)
    if sig == signal.SIGINT:
        assert code == 130 and "nothing was published" in err
        assert not [p for p in os.listdir(tmp_path / "out") if ".tmp-" in p]  # cleaned up
    else:
        assert code == -signal.SIGKILL
    assert not wait_until_gone(children, timeout=60), "worker processes outlived the run"
    assert sorted(os.listdir(tmp_path / "out/features")) == files
    assert_eq(pd.read_parquet(tmp_path / "out/features"), before)

    assert finish(start_cli(tmp_path, config))[0] == 0  # a rerun completes
    assert_eq(pd.read_parquet(tmp_path / "out/features"), before)
