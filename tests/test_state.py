"""The summary state never loses a batch: a folder of per-batch files merged on read (flows.state).

Concurrent runs are made to overlap for real: every run waits at a barrier just before it commits,
so all of them have planned (read the state) and computed before any commits.
"""

from __future__ import annotations

import json
import threading
import uuid

import dask
import fsspec
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

import flows
import flows.table
from flows.state import StateStore
from pipelines.errors import InputError
from pipelines.summary_state import SummaryState


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as active:
            yield active


def batch(folder, seed: int, rows: int) -> pd.DataFrame:
    """A Parquet batch in ``folder`` (prices far from zero, NaN, three keys)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"symbol": rng.choice(["A", "B", "C"], rows), "price": 1e6 + rng.normal(0, 1, rows)})
    frame.loc[rng.random(rows) < 0.05, "price"] = np.nan
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part.parquet")
    return frame


def config(state: str, path: str) -> dict:
    return {"flow": "table", "input": {"format": "parquet", "path": path},
            "summary": {"columns": ["price"], "by": "symbol", "state": state}}


def run_together(monkeypatch, client, configs: list[dict]) -> list[object]:
    """Run the flows in threads; each waits before its commit until all are there. Results or errors."""
    barrier = threading.Barrier(len(configs), timeout=120)
    commit = StateStore.commit

    def commit_after_the_others(self, *args, **kwargs):
        barrier.wait()
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "commit", commit_after_the_others)
    outcomes: list[object] = [None] * len(configs)

    def one(index: int) -> None:
        try:
            outcomes[index] = flows.run(configs[index], client=client)
        except Exception as error:  # noqa: BLE001 - reported to the test
            outcomes[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(configs))]
    # Client.as_current() sets dask's global "scheduler" option, and dask.config.set is not
    # thread-safe: concurrent runs can leave it set after their client is gone. Restore it here.
    with dask.config.set({"scheduler": None}):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    return outcomes


def assert_state_holds(state: SummaryState, frames: list[pd.DataFrame]) -> None:
    both = pd.concat(frames).groupby("symbol")["price"]
    table = state.to_frame()
    counts = table["count"].droplevel("column")
    pd.testing.assert_series_equal(counts, both.count().astype("int64"), check_names=False, check_index_type=False)
    np.testing.assert_allclose(table["mean"].to_numpy(), both.mean().to_numpy(), rtol=1e-13)
    np.testing.assert_allclose(table["std"].to_numpy(), both.std().to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_concurrent_runs_of_different_inputs_both_end_up_in_the_state(tmp_path, monkeypatch, client, where):
    frames = [batch(tmp_path / f"b{i}", i, 300 + 100 * i) for i in range(3)]
    state = str(tmp_path / "state") if where == "local" else f"memory://state-{uuid.uuid4().hex}/state"
    outcomes = run_together(monkeypatch, client, [config(state, str(tmp_path / f"b{i}")) for i in range(3)])
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    store = StateStore.open(state, {})
    assert len(store.files()) == 3  # one batch file per run, none rewritten
    merged = store.read()
    assert sorted(s["path"] for s in merged.sources) == [str(tmp_path / f"b{i}") for i in range(3)]
    assert_state_holds(merged, frames)
    with pytest.raises(InputError, match="is already merged into the summary state"):
        flows.run(config(state, str(tmp_path / "b1")), client=client)  # still refused afterwards


def test_concurrent_runs_of_the_same_input_merge_it_once(tmp_path, monkeypatch, client):
    frame = batch(tmp_path / "b", 7, 400)
    state = str(tmp_path / "state")
    outcomes = run_together(monkeypatch, client, [config(state, str(tmp_path / "b"))] * 2)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], InputError), outcomes
    message = str(errors[0])
    assert message.startswith(f"summary.state: {state}: input '{tmp_path / 'b'}' (fingerprint "), message
    assert "is already merged into the summary state" in message and "\n" not in message
    store = StateStore.open(state, {})
    assert len(store.files()) == 1
    assert_state_holds(store.read(), [frame])


def test_a_corrupt_batch_file_is_one_line_naming_the_state_and_the_file(tmp_path, client):
    batch(tmp_path / "b", 1, 50)
    state = tmp_path / "state"
    state.mkdir()
    (state / "0123abcd.json").write_text('{"format": "dask-flows/summary-state"')  # cut short
    with pytest.raises(InputError) as caught:
        flows.run(config(str(state), str(tmp_path / "b")), client=client)
    assert str(caught.value).startswith(f"summary.state: {state}/0123abcd.json: not a readable JSON state (")
    assert "\n" not in str(caught.value)
    (state / "0123abcd.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match=f"^summary.state: {state}/0123abcd.json: summary state: not a dask"):
        flows.run(config(str(state), str(tmp_path / "b")), client=client)
    (state / ".0123abcd.json.tmp-x").write_text("{")  # a hidden temp file is no batch
    (state / "0123abcd.json").unlink()
    flows.run(config(str(state), str(tmp_path / "b")), client=client)


def test_a_single_file_state_of_the_previous_release_is_one_batch_and_becomes_a_folder(tmp_path, client):
    first, second = batch(tmp_path / "b1", 1, 300), batch(tmp_path / "b2", 2, 200)
    state = tmp_path / "state.json"
    flows.run(config(str(tmp_path / "folder"), str(tmp_path / "b1")), client=client)
    (legacy,) = StateStore.open(str(tmp_path / "folder"), {}).files()
    state.write_bytes(fsspec.filesystem("file").cat_file(legacy))  # the old format: one JSON file
    assert StateStore.open(str(state), {}).files() == [str(state)]
    with pytest.raises(InputError, match=f"^summary.state: {state}: input .* is already merged"):
        flows.run(config(str(state), str(tmp_path / "b1")), client=client)
    assert state.is_file()

    result = flows.run(config(str(state), str(tmp_path / "b2")), client=client)
    assert state.is_dir() and not (tmp_path / "state.json.legacy").exists()
    names = sorted(p.name for p in state.iterdir())
    assert len(names) == 2 and names[1].startswith("legacy-"), names
    assert_state_holds(StateStore.open(str(state), {}).read(), [first, second])
    assert result.summary["count"].sum() == pd.concat([first, second])["price"].count()


def test_an_interrupted_conversion_still_reads_the_old_state_once(tmp_path, client):
    first, second = batch(tmp_path / "b1", 1, 300), batch(tmp_path / "b2", 2, 200)
    folder = tmp_path / "folder"
    flows.run(config(str(folder), str(tmp_path / "b1")), client=client)
    (legacy,) = StateStore.open(str(folder), {}).files()
    aside = tmp_path / "state.json.legacy"  # killed after moving the file aside, before the folder
    aside.write_bytes(fsspec.filesystem("file").cat_file(legacy))
    state = str(tmp_path / "state.json")
    assert_state_holds(StateStore.open(state, {}).read(), [first])
    flows.run(config(state, str(tmp_path / "b2")), client=client)
    assert not aside.exists() and len(StateStore.open(state, {}).files()) == 2
    assert_state_holds(StateStore.open(state, {}).read(), [first, second])


def test_an_input_changed_between_planning_and_publishing_is_refused(tmp_path, monkeypatch, client):
    frame = batch(tmp_path / "b", 3, 300)
    state, out = tmp_path / "state", tmp_path / "out"
    compute = flows.table._compute

    def compute_then_change_the_input(*args, **kwargs):
        values = compute(*args, **kwargs)
        frame.head(10).to_parquet(tmp_path / "b" / "part.parquet")  # rewritten after it was read
        return values

    monkeypatch.setattr(flows.table, "_compute", compute_then_change_the_input)
    run = {**config(str(state), str(tmp_path / "b")), "output": {"path": str(out)}}
    with pytest.raises(InputError) as caught:
        flows.run(run, client=client)
    message = str(caught.value)
    assert message.startswith(f"input.path: {tmp_path / 'b' / 'part.parquet'}: changed while the run read it"), message
    assert not out.exists() and not state.exists()  # nothing published, nothing merged
    monkeypatch.undo()
    flows.run(run, client=client)  # the rerun reads the file as it is now
    assert StateStore.open(str(state), {}).read().to_frame()["count"].sum() == frame.head(10)["price"].count()


def test_a_state_or_output_under_a_file_is_refused_naming_its_key(tmp_path, client):
    batch(tmp_path / "b", 1, 50)
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(InputError, match=f"^summary.state: {tmp_path}/afile/state: {tmp_path}/afile is a file"):
        flows.run(config(str(tmp_path / "afile/state"), str(tmp_path / "b")), client=client)
    run = {**config(str(tmp_path / "state"), str(tmp_path / "b")), "output": {"path": str(tmp_path / "afile/x")}}
    with pytest.raises(InputError, match=f"^output.path: {tmp_path}/afile/x: {tmp_path}/afile is a file"):
        flows.run(run, client=client)
