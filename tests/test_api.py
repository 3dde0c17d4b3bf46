"""`flows.run` from Python: the caller's Client is used and left alone; what a run made, it closes."""

from __future__ import annotations

import pandas as pd

import flows
from flows.report import RunResult

CONFIG = {
    "flow": "table",
    "cluster": {"n_workers": 1, "processes": False},
    "input": {"format": "synthetic", "rows": 2000, "symbols": 2, "npartitions": 3},
    "steps": [{"dedup": {"by": "symbol", "subset": ["price", "size"]}},
              {"lookahead": {"horizon": 10, "columns": ["price"], "features": ["max"], "by": "symbol"}}],
    "summary": {"columns": ["price"], "by": "symbol"},
}


def test_run_with_a_users_client_leaves_it_open(local_client, tmp_path):
    workers = set(local_client.scheduler_info()["workers"])
    result = flows.run({**CONFIG, "output": {"path": str(tmp_path / "a")}}, client=local_client)
    assert isinstance(result, RunResult)
    assert local_client.status == "running"
    assert set(local_client.scheduler_info()["workers"]) == workers
    assert result.scheduler == local_client.scheduler.address
    assert [s.name for s in result.steps] == ["input", "steps[0].dedup", "steps[1].lookahead", "output + summary"]
    assert all(s.task_seconds > 0 for s in result.steps)
    assert result.steps[0].rows_out == 2000 and result.steps[1].rows_in == 2000
    assert list(result.summary.columns) == ["count", "mean", "std", "var", "min", "max"]
    assert "price_max_10r" in pd.read_parquet(result.output).columns
    assert "<table" in result._repr_html_() and "steps[1].lookahead" in repr(result)
    # overrides as a dict, and a second run on the same client
    again = flows.run({**CONFIG, "output": {"path": str(tmp_path / "a")}}, client=local_client,
                      overrides={"output.overwrite": True})
    assert again.output == result.output and local_client.status == "running"


def test_run_without_a_client_cleans_up(tmp_path):
    from distributed.client import _global_clients
    from distributed.deploy.spec import SpecCluster

    def running():
        clusters = {id(c) for c in SpecCluster._instances if c.status.name == "running"}
        clients = {id(c) for c in _global_clients.values() if c.status == "running"}
        return clusters, clients

    before = running()
    result = flows.run({**CONFIG, "output": {"path": str(tmp_path / "b")}})
    assert result.output.endswith("b")
    assert running() == before


def test_summary_only_run_and_dry_run(tmp_path):
    result = flows.run(CONFIG)  # a summary and no output
    assert result.output is None and len(result.summary) == 2
    dry = flows.run({**CONFIG, "output": {"path": str(tmp_path / "c")}}, dry_run=True)
    assert dry.dry_run and "lookahead" in repr(dry) and not (tmp_path / "c").exists()


def test_summary_state_batch_by_batch_equals_all_at_once(tmp_path):
    """N runs over N batches, merging the saved state, equal one run over all of them."""
    import numpy as np
    from dask.dataframe.utils import assert_eq

    rng = np.random.default_rng(0)
    everything = tmp_path / "all"
    everything.mkdir()
    for i, rows in enumerate([500, 0, 1200, 37]):
        frame = pd.DataFrame({"symbol": rng.choice(["A", "B", "C"], rows),
                              "price": 1e9 + rng.normal(0, 1, rows)})
        (tmp_path / f"batch{i}").mkdir()
        frame.to_parquet(tmp_path / f"batch{i}" / "part.parquet")
        frame.to_parquet(everything / f"part-{i}.parquet")
    config = {"flow": "table", "cluster": {"n_workers": 1, "processes": False},
              "input": {"format": "parquet", "path": "?"},
              "summary": {"columns": ["price"], "by": "symbol", "state": str(tmp_path / "state.json")}}
    for i in (0, 2, 3):  # a flow refuses an input without rows (batch 1); summary.py merges empty batches
        result = flows.run(config, overrides={"input.path": str(tmp_path / f"batch{i}")})
    once = flows.run(config, overrides={"input.path": str(everything), "summary.state": None})
    assert_eq(result.summary, once.summary, rtol=1e-12, check_dtype=False)


def test_cuda_cluster_without_dask_cuda_is_a_clear_error(tmp_path, capsys):
    import importlib.util

    import pytest

    from flows.cli import main

    if importlib.util.find_spec("dask_cuda") is not None:
        pytest.skip("dask-cuda is installed here")
    config = tmp_path / "cuda.yaml"
    config.write_text("flow: compare\ncluster: {kind: cuda}\ninput: {format: synthetic, n: 3}\n"
                      f"output: {{path: {tmp_path / 'x.zarr'}}}\n")
    assert main(["run", str(config)]) == 2
    assert "cluster.kind: cuda needs dask-cuda" in capsys.readouterr().err


def test_fsspec_urls_for_input_and_output():
    """Inputs and outputs may be fsspec URLs; publishing works on that filesystem too."""
    import fsspec

    fs = fsspec.filesystem("memory")
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=100, freq="s"), "price": range(100)})
    with fs.open("memory://dask-flows-test/in/a.parquet", "wb") as handle:
        frame.to_parquet(handle)
    result = flows.run({
        "flow": "table", "cluster": {"n_workers": 1, "processes": False},  # memory:// is per process
        "input": {"format": "parquet", "path": "memory://dask-flows-test/in", "time": "ts"},
        "steps": [{"lookahead": {"horizon": "5s", "columns": ["price"], "features": ["max"]}}],
        "output": {"path": "memory://dask-flows-test/out"},
    })
    assert result.output.startswith("memory://") and result.output.endswith("dask-flows-test/out")
    assert fs.exists("/dask-flows-test/out/_SUCCESS")
    assert pd.read_parquet(result.output)["price_max_5s"].iloc[0] == 5
    assert not [p for p in fs.ls("/dask-flows-test", detail=False) if ".tmp-" in p]
    fs.rm("/dask-flows-test", recursive=True)
