"""``dask-flows run --dry-run`` reports the graph the run computes: its tasks and its depth (the
longest dependency chain), which grows with log2 of the partitions, not with the partitions."""

from __future__ import annotations

import math
import re

import pytest
from test_cli import SMALL, run_main, snapshot, write_config

from flows.config import parse_config
from flows.table import plan_table
from pipelines.partitions import graph_depth, task_graph

GRAPH_LINE = re.compile(r"^graph: (\d+) tasks, depth (\d+) \(longest dependency chain\)", re.M)


def with_partitions(npartitions: int, summary: bool) -> dict:
    config = {**SMALL, "input": {**SMALL["input"], "npartitions": npartitions, "rows": 20 * npartitions,
                                 "time": "ts"}}
    if summary:
        config["summary"] = {"columns": ["price", "price_change_30s"], "by": "symbol"}
    return config


@pytest.mark.parametrize("npartitions", [1, 5, 64])
def test_dry_run_prints_the_tasks_and_depth_of_the_run_graph(tmp_path, capsys, monkeypatch, npartitions):
    monkeypatch.chdir(tmp_path)
    config = with_partitions(npartitions, summary=True)
    code, out, err = run_main(capsys, "run", write_config(tmp_path, config), "--dry-run")
    assert code == 0, err
    found = GRAPH_LINE.search(out)
    assert found, out
    tasks, depth = int(found[1]), int(found[2])
    plan = plan_table(parse_config(config))  # the same collections as the run, built again
    collections = [plan.frames[-1], *plan.results.values()]
    assert (tasks, depth) == (len(task_graph(*collections)), graph_depth(*collections))
    assert 0 < depth <= 4 * math.log2(max(npartitions, 2)) + 30
    if npartitions == 64:
        assert depth < npartitions  # not a chain through the partitions
    assert snapshot(tmp_path) == ["run.yaml"]
