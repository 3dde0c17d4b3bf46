"""The table flow on a real S3-compatible server (moto on 127.0.0.1): Parquet in and out of
``s3://``, on worker processes whose working directory is not the client's, equal to the same run
on local paths."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from dask.dataframe.utils import assert_eq
from s3 import s3  # noqa: F401  (the session fixture)
from test_reliability import TABLE, write_wide_ticks

import flows

SUMMARY = {"columns": ["price", "price_change_20s"], "by": "symbol"}


@pytest.fixture
def client_elsewhere(s3, tmp_path, monkeypatch):  # noqa: F811
    """A process LocalCluster started in one folder; the client then works from another.

    Started after the ``s3`` fixture, so the workers inherit ``AWS_ENDPOINT_URL``.
    """
    from distributed import Client, LocalCluster

    workers_dir, client_dir = tmp_path / "workers", tmp_path / "client"
    workers_dir.mkdir()
    client_dir.mkdir()
    monkeypatch.chdir(workers_dir)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(workers_dir)) as cluster, Client(cluster, set_as_default=False) as client:
        monkeypatch.chdir(client_dir)
        assert set(client.run(os.getcwd).values()) == {str(workers_dir)}
        assert set(client.run(os.environ.get, "AWS_ENDPOINT_URL").values()) == {s3.endpoint}
        yield client


def table_config(source: str, target: str, **output) -> dict:
    return {
        **TABLE,
        "cluster": {},
        "input": {"format": "parquet", "path": source, "time": "ts"},
        "summary": SUMMARY,
        "output": {"path": target, **output},
    }


def test_table_flow_on_s3_equals_local_paths(s3, client_elsewhere, tmp_path):  # noqa: F811
    local_in = tmp_path / "in"
    write_wide_ticks(local_in, files=4, rows=1500, width=2)
    bucket = s3.new_bucket()
    s3.fs.put(str(local_in) + "/", f"{bucket}/in/", recursive=True)

    on_s3 = flows.run(table_config(f"s3://{bucket}/in/", f"s3://{bucket}/out/"), client=client_elsewhere)
    local = flows.run(table_config(str(local_in), str(tmp_path / "out")), client=client_elsewhere)

    fs = s3.fs
    assert fs.exists(f"{bucket}/out/_SUCCESS")
    assert not [p for p in fs.ls(bucket) if ".tmp-" in p]
    expected = pd.read_parquet(tmp_path / "out")
    assert len(expected) == local.steps[-1].rows_out > 0
    assert_eq(pd.read_parquet(f"s3://{bucket}/out/"), expected, check_index=False)
    assert_eq(on_s3.summary, local.summary)
    assert [s.rows_out for s in on_s3.steps] == [s.rows_out for s in local.steps]
    assert not list((tmp_path / "client").iterdir())  # nothing leaned on a local path


def test_table_flow_overwrites_on_s3(s3, client_elsewhere, tmp_path):  # noqa: F811
    """A second run with overwrite: true replaces the S3 output (exactly one copy of the rows)."""
    write_wide_ticks(tmp_path / "in", files=2, rows=800, width=1)
    bucket = s3.new_bucket()
    s3.fs.put(str(tmp_path / "in") + "/", f"{bucket}/in/", recursive=True)
    config = table_config(f"s3://{bucket}/in/", f"s3://{bucket}/out", overwrite=True)
    first = flows.run(config, client=client_elsewhere)
    again = flows.run(config, client=client_elsewhere)
    rows = pd.read_parquet(f"s3://{bucket}/out")
    assert len(rows) == first.steps[-1].rows_out == again.steps[-1].rows_out
    assert s3.fs.exists(f"{bucket}/out/_SUCCESS")
    assert not [p for p in s3.fs.ls(bucket) if ".tmp-" in p]


def test_summary_state_on_s3_keeps_every_concurrent_batch(s3, client_elsewhere, tmp_path, monkeypatch):  # noqa: F811
    """Three runs of different inputs commit into one ``s3://`` state at the same time (each waits
    before its commit until all are there): all three batches end up in it, exactly."""
    from test_state import assert_state_holds, batch, config, run_together

    from flows.state import StateStore

    frames = [batch(tmp_path / f"b{i}", i, 300 + 100 * i) for i in range(3)]
    state = f"s3://{s3.new_bucket()}/state"
    outcomes = run_together(monkeypatch, client_elsewhere, [config(state, str(tmp_path / f"b{i}")) for i in range(3)])
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    store = StateStore.open(state, {})
    assert len(store.files()) == 3
    assert_state_holds(store.read(), frames)
    again = run_together(monkeypatch, client_elsewhere, [config(state, str(tmp_path / "b1"))])
    assert "is already merged into the summary state" in str(again[0])
