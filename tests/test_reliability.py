"""Faults survived, nothing lost: killed workers, a lost scheduler, interrupted and killed runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from conftest import BIN, REPO, DaskProcesses, subprocess_env
from dask.dataframe.utils import assert_eq

TABLE = {
    "flow": "table",
    "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": False},
    "input": {"format": "synthetic", "rows": 20000, "symbols": 4, "npartitions": 16, "seed": 7},
    "steps": [
        {"dedup": {"subset": ["price", "size"], "by": "symbol"}},
        {"lookahead": {"horizon": "20s", "columns": ["price"], "features": ["change", "max"], "by": "symbol"}},
    ],
    "output": {"path": "out/features"},
}


def slowed(config: dict, markers, seconds: float = 0.4) -> dict:
    step = {"map": {"function": "userfuncs:slow", "kwargs": {"seconds": seconds, "marker": str(markers)}}}
    return {**config, "steps": [*config["steps"], step]}


def start_cli(folder, config: dict, *args: str) -> subprocess.Popen:
    path = folder / f"run-{time.time_ns()}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.Popen(
        [str(BIN / "dask-flows"), "run", str(path), *args], cwd=folder, env=subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_markers(markers, n: int, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while len(os.listdir(markers)) < n:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the run never started its tasks"
        time.sleep(0.05)


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def reference(folder, config: dict) -> pd.DataFrame:
    process = start_cli(folder, {**config, "output": {"path": "reference"}})
    code, _, err = finish(process)
    assert code == 0, err
    return pd.read_parquet(folder / "reference")


@pytest.fixture
def markers(tmp_path):
    path = tmp_path / "markers"
    path.mkdir()
    return path


def test_table_flow_survives_a_killed_worker(tmp_path, markers):
    expected = reference(tmp_path, TABLE)
    cluster = DaskProcesses(n_workers=3, nanny=False)
    try:
        process = start_cli(tmp_path, slowed(TABLE, markers), "--scheduler", cluster.address)
        wait_for_markers(markers, 4, process)
        cluster.workers[0].send_signal(signal.SIGKILL)
        code, out, err = finish(process)
        assert code == 0, err
    finally:
        cluster.close()
    assert_eq(pd.read_parquet(tmp_path / "out/features"), expected, check_index=False)


def test_lost_scheduler_ends_the_run_clearly(tmp_path, markers):
    cluster = DaskProcesses(n_workers=2, nanny=False)
    try:
        process = start_cli(tmp_path, slowed(TABLE, markers, seconds=1.0), "--scheduler", cluster.address)
        wait_for_markers(markers, 2, process)
        cluster.scheduler.send_signal(signal.SIGKILL)
        code, _, err = finish(process)
    finally:
        cluster.close()
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "scheduler" in err and "Traceback" not in err
    assert not (tmp_path / "out/features").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_keeps_the_previous_output(tmp_path, markers, sig):
    config = {**TABLE, "output": {"path": "out/features", "overwrite": True}}
    process = start_cli(tmp_path, config)
    assert finish(process)[0] == 0
    before = pd.read_parquet(tmp_path / "out/features")
    files = sorted(os.listdir(tmp_path / "out/features"))

    process = start_cli(tmp_path, slowed(config, markers))
    wait_for_markers(markers, 2, process)
    process.send_signal(sig)
    code, _, err = finish(process)
    assert code != 0
    if sig == signal.SIGINT:
        assert code == 130 and "nothing was published" in err
        assert not [p for p in os.listdir(tmp_path / "out") if ".tmp-" in p]  # cleaned up
    assert sorted(os.listdir(tmp_path / "out/features")) == files
    assert_eq(pd.read_parquet(tmp_path / "out/features"), before)

    process = start_cli(tmp_path, config)  # a rerun completes
    assert finish(process)[0] == 0
    assert_eq(pd.read_parquet(tmp_path / "out/features"), before)


def write_wide_ticks(folder, files: int, rows: int, width: int) -> int:
    """Parquet files of ticks with `width` extra float columns; returns their size in memory."""
    import numpy as np

    folder.mkdir()
    size = 0
    for i in range(files):
        rng = np.random.default_rng(i)
        start = pd.Timestamp("2026-01-02") + pd.Timedelta(seconds=i * rows)
        frame = pd.DataFrame({
            "ts": start + pd.to_timedelta(np.arange(rows), unit="s"),
            "symbol": rng.choice(["A", "B", "C", "D"], rows),
            "price": np.round(100 + rng.normal(0, 1, rows).cumsum() * 0.01, 2),
            "size": rng.integers(1, 3, rows) * 100.0,
        })
        extra = pd.DataFrame(rng.random((rows, width)), columns=[f"x{j}" for j in range(width)])
        frame = pd.concat([frame, extra], axis=1)
        size += int(frame.memory_usage(deep=True).sum())
        frame.to_parquet(folder / f"part-{i:03d}.parquet", compression=None)
    return size


def test_flow_streams_data_larger_than_cluster_memory(tmp_path):
    """The data is larger than all workers' memory_limit together; partitions stream through."""
    from distributed import Client, LocalCluster

    import dask

    import flows
    from flows.cluster import worker_environ

    limit = 600 * 2**20  # a worker process holds ~370 MiB before any data (Python, pandas, Arrow, Numba)
    data_bytes = write_wide_ticks(tmp_path / "wide", files=250, rows=16_250, width=40)  # ~5 MiB partitions
    assert data_bytes > 2 * limit
    config = {
        **TABLE,
        "input": {"format": "parquet", "path": str(tmp_path / "wide"), "time": "ts"},
        "output": {"path": str(tmp_path / "out")},
    }
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}), LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=limit, dashboard_address=None
    ) as cluster:  # the environment flows.cluster gives the workers it starts
        with Client(cluster) as client:
            result = flows.run(config, client=client)
            peak = client.run(lambda dask_worker: dask_worker.monitor.range_query(start=0)["memory"])
    assert result.steps[0].rows_out == 250 * 16_250
    assert pd.read_parquet(tmp_path / "out", columns=["price"]).shape[0] == result.steps[-1].rows_out
    for worker, memory in peak.items():  # each worker stayed under its limit the whole run
        assert max(memory) < limit, (worker, max(memory) / 2**20)


@pytest.mark.skipif(not os.path.exists("/usr/bin/openssl"), reason="needs openssl to make certificates")
def test_tls_scheduler(tmp_path):
    """A TLS scheduler: the configured certificates work; a plain tcp:// connection is refused."""
    from conftest import run_cli

    certs = make_certificates(tmp_path)
    tls_args = ["--tls-ca-file", certs["ca"], "--tls-cert", certs["cert"], "--tls-key", certs["key"]]
    cluster = DaskProcesses(n_workers=1, protocol="tls", tls_args=tls_args)
    try:
        tls = {"ca_file": certs["ca"], "cert": certs["cert"], "key": certs["key"]}
        config = {**TABLE, "cluster": {"address": cluster.address, "tls": tls, "timeout": "5s"}}
        path = tmp_path / "tls.yaml"
        path.write_text(yaml.safe_dump(config))
        ok = run_cli("run", str(path), cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert (tmp_path / "out/features/_SUCCESS").exists()
        plain = cluster.address.replace("tls://", "tcp://")
        refused = run_cli("run", str(path), "--scheduler", plain, "--set", "output.path=plain", cwd=tmp_path)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert plain in refused.stderr and "Traceback" not in refused.stderr
        no_tls = run_cli("run", str(path), "--set", "cluster.tls=null", "--set", "output.path=x", cwd=tmp_path)
        assert no_tls.returncode == 2 and "cluster.tls" in no_tls.stderr
    finally:
        cluster.close()


def make_certificates(folder) -> dict[str, str]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (openssl, no network)."""
    ca_key, ca, key, csr, cert = (str(folder / n) for n in ("ca.key", "ca.pem", "tls.key", "tls.csr", "tls.pem"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=dask-flows test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", str(ext))
    return {"ca": ca, "cert": cert, "key": key}


def test_repo_has_no_unsafe_loading():
    """YAML through safe_load only; NumPy never unpickles."""
    for path in [*REPO.glob("flows/*.py"), *REPO.glob("pipelines/*.py")]:
        text = path.read_text()
        assert "yaml.load(" not in text and "allow_pickle=True" not in text, path
        assert "import pickle" not in text, path


def test_compare_flow_survives_a_killed_worker(tmp_path):
    """A compare grid on 3 worker processes, one SIGKILLed mid-run: the store equals an undisturbed run's."""
    import numpy as np
    import zarr

    compare = {
        "flow": "compare",
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": False},
        "input": {"format": "synthetic", "n": 1500, "rows": 8, "min_len": 40, "max_len": 80, "seed": 5},
        "compare": {"tile": 50},
        "output": {"path": "reference.zarr"},
    }
    assert finish(start_cli(tmp_path, compare))[0] == 0
    cluster = DaskProcesses(n_workers=3, nanny=False)
    try:
        process = start_cli(tmp_path, {**compare, "output": {"path": "killed.zarr"}}, "--scheduler", cluster.address)
        staged = lambda: list(tmp_path.glob("killed.zarr.tmp-*/_tiles"))  # noqa: E731 - the staged store
        deadline = time.time() + 120
        while not (staged() and len(os.listdir(staged()[0])) >= 30):
            assert process.poll() is None, process.communicate()
            assert time.time() < deadline
            time.sleep(0.02)
        cluster.workers[0].send_signal(signal.SIGKILL)
        code, out, err = finish(process)
        assert code == 0, err
        assert "465 tiles" in out or "tiles=465" in out
    finally:
        cluster.close()
    reference, killed = zarr.open_group(tmp_path / "reference.zarr", mode="r"), zarr.open_group(tmp_path / "killed.zarr", mode="r")
    for name in ("score", "lag"):
        np.testing.assert_array_equal(killed[name][...], reference[name][...])
