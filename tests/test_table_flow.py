"""The table flow end to end: output values equal the plain pandas references, the summary state is
committed only after the output is published, and the input is one listed set of files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import reference_drop_consecutive_duplicates as reference_dedup
from reference import reference_future_features

import flows
import flows.table
from flows.config import ParquetInput, SyntheticTicks
from flows.sources import TableSource, synthetic_ticks
from flows.state import StateStore

IN_PROCESS = {"n_workers": 2, "threads_per_worker": 1, "processes": False}


def reference_summary(frame: pd.DataFrame, columns: list[str], by: str) -> pd.DataFrame:
    """count, mean, std, var, min, max per key and column, by pandas' groupby."""
    long = frame.melt(id_vars=[by], value_vars=columns, var_name="column")
    values = long.groupby([by, "column"])["value"]
    return pd.DataFrame({"count": values.count(), "mean": values.mean(), "std": values.std(),
                         "var": values.var(), "min": values.min(), "max": values.max()})


def test_quickstart_values_equal_the_references(tmp_path):
    """configs/quickstart.yaml (fewer rows): dedup -> 30 s lookahead -> Parquet + summary."""
    overrides = {"input.rows": 4000, "input.npartitions": 7, "cluster": IN_PROCESS,
                 "output.path": str(tmp_path / "out")}
    result = flows.run("configs/quickstart.yaml", overrides=overrides)
    source = SyntheticTicks(format="synthetic", rows=4000, symbols=10, npartitions=7, seed=0, time="ts")
    ticks = synthetic_ticks(source).compute().reset_index(drop=True)
    deduped = reference_dedup(ticks, subset=["price", "size"], by="symbol").reset_index(drop=True)
    expected = reference_future_features(deduped, "30s", ["price"], ["change", "max", "min"], by="symbol", time="ts")
    output = pd.read_parquet(result.output)
    assert len(deduped) < len(ticks)  # the dedup dropped rows
    pd.testing.assert_frame_equal(output, expected, check_dtype=False)
    assert [s.rows_out for s in result.steps] == [len(ticks), len(deduped), len(deduped), len(deduped)]
    summary = reference_summary(expected, ["price", "price_change_30s"], "symbol")
    pd.testing.assert_frame_equal(result.summary.sort_index(), summary.sort_index(), check_dtype=False, rtol=1e-12)


def multi_key_ticks(seed: int = 3, rows: int = 900) -> pd.DataFrame:
    """Two key columns, repeated times, runs of duplicates, NaN prices."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-01-02 09:30") + pd.to_timedelta(np.sort(rng.integers(0, 600, rows)), unit="s"),
        "symbol": rng.choice(["A", "B", "C"], rows),
        "venue": rng.choice(["X", "Y"], rows),
        "price": np.round(100 + rng.normal(0, 0.02, rows).cumsum(), 2),
    })
    frame.loc[rng.random(rows) < 0.3, "price"] = 100.0  # runs of equal prices
    frame.loc[rng.random(rows) < 0.05, "price"] = np.nan
    return frame


@pytest.mark.parametrize("horizon", [5, "20s"])
def test_multi_key_parquet_values_equal_the_references(tmp_path, horizon):
    frame = multi_key_ticks()
    (tmp_path / "in").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 6)):  # files of uneven keys
        frame.iloc[part].to_parquet(tmp_path / f"in/part-{i}.parquet")
    keys = ["symbol", "venue"]
    result = flows.run({
        "flow": "table", "cluster": IN_PROCESS,
        "input": {"format": "parquet", "path": str(tmp_path / "in"), "time": "ts"},
        "steps": [{"dedup": {"subset": ["price"], "by": keys}},
                  {"lookahead": {"horizon": horizon, "columns": ["price"], "by": keys, "partial": True,
                                 "features": ["future", "change", "max", "mean", "count"]}}],
        "output": {"path": str(tmp_path / "out")},
    })
    deduped = reference_dedup(frame, subset=["price"], by=keys).reset_index(drop=True)
    expected = reference_future_features(deduped, horizon, ["price"], ["future", "change", "max", "mean", "count"],
                                         by=keys, time="ts", partial=True)
    pd.testing.assert_frame_equal(pd.read_parquet(result.output), expected, check_dtype=False)


def folder_contents(folder) -> dict[str, bytes]:
    """Every file in ``folder`` by name, with its bytes (a state folder holds one file per batch)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def write_batch(folder, rows: int, seed: int) -> pd.DataFrame:
    folder.mkdir()
    frame = multi_key_ticks(seed, rows)
    frame.to_parquet(folder / "part.parquet")
    return frame


def test_failed_publish_commits_no_state_and_the_rerun_is_accepted(tmp_path, monkeypatch):
    """The state is the commit record: written after the output is published, never before."""
    first, second = write_batch(tmp_path / "b1", 300, 1), write_batch(tmp_path / "b2", 500, 2)
    state = tmp_path / "state.json"
    config = {"flow": "table", "cluster": IN_PROCESS, "input": {"format": "parquet", "path": "?"},
              "summary": {"columns": ["price"], "state": str(state)},
              "output": {"path": str(tmp_path / "out"), "overwrite": True}}
    flows.run(config, overrides={"input.path": str(tmp_path / "b1")})
    committed = folder_contents(state)

    def fail(self):
        raise OSError("the disk filled up while publishing")

    with monkeypatch.context() as patch:
        patch.setattr(flows.table.Publication, "publish", fail)
        with pytest.raises(OSError, match="disk filled up"):
            flows.run(config, overrides={"input.path": str(tmp_path / "b2")})
    assert folder_contents(state) == committed  # batch 2 was not recorded
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), first, check_dtype=False)  # nor published

    result = flows.run(config, overrides={"input.path": str(tmp_path / "b2")})  # accepted
    sources = [s["path"] for s in StateStore.open(str(state), {}).read().sources]
    assert sorted(sources) == [str(tmp_path / "b1"), str(tmp_path / "b2")]  # batch files merge in name order
    assert len(folder_contents(state)) == 2  # one batch file per run
    both = pd.concat([first, second])["price"]
    assert result.summary.loc["price", "count"] == both.count()  # each batch merged exactly once
    assert result.summary.loc["price", "mean"] == pytest.approx(both.mean(), rel=1e-12)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), second, check_dtype=False)


def test_stray_files_change_neither_what_is_read_nor_the_fingerprint(tmp_path):
    folder = tmp_path / "in"
    frame = write_batch(folder, 200, 4)
    config = ParquetInput(format="parquet", path=str(folder), time="ts")
    before = TableSource.from_config(config)
    frame.head(3).to_parquet(folder / ".hidden.parquet")
    frame.head(3).to_parquet(folder / "_temporary.parquet")
    (folder / "notes.txt").write_text("not data")
    (folder / "_spark").mkdir()
    frame.head(3).to_parquet(folder / "_spark/part.parquet")
    after = TableSource.from_config(config)
    assert after.files == before.files == (str(folder / "part.parquet"),)
    assert after.fingerprint() == before.fingerprint()
    pd.testing.assert_frame_equal(after.frame().compute().reset_index(drop=True), frame, check_dtype=False)
    frame.head(3).to_parquet(folder / "more.parquet")  # a real new file is new input
    assert TableSource.from_config(config).fingerprint() != before.fingerprint()
