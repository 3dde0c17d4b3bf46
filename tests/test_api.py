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
    assert [s.name for s in result.steps] == ["input", "steps[0].dedup", "steps[1].lookahead"]
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
