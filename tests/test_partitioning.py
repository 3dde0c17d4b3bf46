"""Input partitioning: a Parquet file's row groups become partitions of about ``input.blocksize``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flows
from flows.config import ParquetInput
from flows.sources import TableSource

IN_PROCESS = {"n_workers": 2, "threads_per_worker": 1, "processes": False}
ROWS, GROUPS = 4000, 20


@pytest.fixture(scope="module")
def ticks(tmp_path_factory):
    """The same ticks as one file of 20 row groups and as a folder of 20 files."""
    root = tmp_path_factory.mktemp("ticks")
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-01-02 09:30") + pd.to_timedelta(np.sort(rng.integers(0, 3600, ROWS)), unit="s"),
        "symbol": rng.choice(["A", "B", "C"], ROWS),
        "price": np.round(100 + rng.normal(0, 0.02, ROWS).cumsum(), 2),
    })
    frame.loc[rng.random(ROWS) < 0.3, "price"] = 100.0
    frame.to_parquet(root / "one.parquet", row_group_size=ROWS // GROUPS)
    (root / "folder").mkdir()
    size = ROWS // GROUPS
    for i in range(GROUPS):
        frame.iloc[i * size:(i + 1) * size].to_parquet(root / "folder" / f"part-{i:02d}.parquet")
    return root, frame


@pytest.mark.parametrize(("blocksize", "partitions"), [("1KiB", GROUPS), (None, 1), ("64MiB", 1)])
def test_row_groups_become_partitions_of_about_blocksize(ticks, blocksize, partitions):
    root, frame = ticks
    config = ParquetInput(format="parquet", path=str(root / "one.parquet"), time="ts", blocksize=blocksize)
    df = TableSource.from_config(config).frame()
    assert df.npartitions == partitions
    pd.testing.assert_frame_equal(df.compute().reset_index(drop=True), frame, check_dtype=False)


def test_a_blocksize_between_row_groups_packs_several_per_partition(ticks):
    root, frame = ticks
    one_group = pd.read_parquet(root / "one.parquet").iloc[: ROWS // GROUPS].memory_usage(deep=False).sum()
    config = ParquetInput(format="parquet", path=str(root / "one.parquet"), blocksize=int(3 * one_group))
    df = TableSource.from_config(config).frame()
    assert 1 < df.npartitions < GROUPS
    pd.testing.assert_frame_equal(df.compute().reset_index(drop=True), frame, check_dtype=False)


def test_one_file_and_the_folder_give_the_same_flow_values_and_dry_run_shows_the_count(ticks, tmp_path):
    root, _ = ticks
    config = {"flow": "table", "cluster": IN_PROCESS,
              "input": {"format": "parquet", "path": "?", "time": "ts", "blocksize": "1KiB"},
              "steps": [{"dedup": {"subset": ["price"], "by": "symbol"}},
                        {"lookahead": {"horizon": "60s", "columns": ["price"], "features": ["change", "max"],
                                       "by": "symbol"}},
                        {"lookahead": {"horizon": 5, "columns": ["price"], "features": ["mean"], "by": "symbol"}}],
              "summary": {"columns": ["price"], "by": "symbol"},
              "output": {"path": "?"}}
    dry = flows.run(config, overrides={"input.path": str(root / "one.parquet"), "output.path": str(tmp_path / "x")},
                    dry_run=True)
    assert f"input                        {GROUPS} partitions" in dry.graph, dry.graph
    results = {}
    for name in ("one.parquet", "folder"):
        results[name] = flows.run(config, overrides={"input.path": str(root / name),
                                                     "output.path": str(tmp_path / name)})
    single, folder = (pd.read_parquet(tmp_path / name) for name in ("one.parquet", "folder"))
    assert len(single) > 0
    pd.testing.assert_frame_equal(single, folder)
    pd.testing.assert_frame_equal(results["one.parquet"].summary, results["folder"].summary)
