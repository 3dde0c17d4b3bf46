"""The table of bad inputs of the README, row by row: each exits 2 with one line naming the culprit
(the config key path as written, the file, the column), prints no traceback, and writes nothing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import free_port

from flows.cli import main

CLUSTER = {"n_workers": 1, "threads_per_worker": 2, "processes": False}


def table(data: dict, **extra) -> dict:
    config = {"flow": "table", "cluster": CLUSTER, "input": {"format": "parquet", "path": "ticks", "time": "ts"},
              "steps": [{"lookahead": {"horizon": "5s", "columns": ["price"], "features": ["max"]}}],
              "output": {"path": "out/features"}}
    config.update(data)
    config.update(extra)
    return config


def matrices(source: dict) -> dict:
    return {"flow": "compare", "cluster": CLUSTER, "input": source, "output": {"path": "out/scores.zarr"}}


def ticks(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({
        "ts": pd.date_range("2026-01-02 09:30", periods=n, freq="s"),
        "symbol": np.where(np.arange(n) % 2, "A", "B"),
        "price": np.linspace(100, 101, n),
    })


def make_files(root: Path) -> None:
    """Inputs the cases refer to, good and bad."""
    (root / "ticks").mkdir()
    ticks().to_parquet(root / "ticks/part-0.parquet")
    (root / "empty").mkdir()
    ticks(0).to_parquet(root / "empty/part-0.parquet")
    (root / "unsorted").mkdir()
    ticks().iloc[::-1].to_parquet(root / "unsorted/part-0.parquet")
    (root / "nat").mkdir()
    ticks().assign(ts=lambda f: f["ts"].where(f.index != 7)).to_parquet(root / "nat/part-0.parquet")
    (root / "corrupt").mkdir()
    (root / "corrupt/part-0.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    (root / "mixed_tz.csv").write_text(
        "ts,price\n2026-01-02T09:30:00+01:00,1.0\n2026-01-02T09:30:01+02:00,2.0\n")
    (root / "numeric_time").mkdir()
    ticks().assign(ts=np.arange(50)).to_parquet(root / "numeric_time/part-0.parquet")
    (root / "state.json").write_text("{not json")
    (root / "state_folder").mkdir()
    (root / "state_folder/0123abcd.json").write_text('{"format": "dask-flows/summary-state"')
    (root / "afile").write_text("a file, not a folder")
    good = np.ones((3, 5))
    for name, arrays in {
        "pickled": {"a": good, "b": None},
        "rows": {"a": good, "b": np.ones((4, 5))},
        "nan": {"a": good, "b": np.full((3, 5), np.nan)},
        "flat": {"a": good, "b": np.ones(5)},
        "nocols": {"a": good, "b": np.ones((3, 0))},
    }.items():
        folder = root / name
        folder.mkdir()
        for key, value in arrays.items():
            if value is None:  # an object array: np.save pickles it
                with open(folder / f"{key}.npy", "wb") as handle:
                    np.save(handle, np.array([{"x": 1}], dtype=object), allow_pickle=True)
            else:
                np.save(folder / f"{key}.npy", value)
    (root / "pickle.npz").write_bytes(pickle.dumps({"a": good}))


UNREACHABLE = f"tcp://127.0.0.1:{free_port()}"

# (id, config or raw text (None: no config file), extra CLI args, texts the error line must contain)
CASES = [
    # config
    ("malformed YAML", "flow: table\ninput: {format: parquet\n", [], ["case.yaml: malformed YAML at line 3, column 1"]),
    ("config file missing", None, [], ["case.yaml: config file not found"]),
    ("unknown key", table({"outptu": {}}), [], ["outptu: unknown key"]),
    ("wrong type", table({"cluster": {"n_workers": "two"}}), [], ["cluster.n_workers: ", "'two'"]),
    ("bad horizon", table({"steps": [{"lookahead": {"horizon": "30x", "columns": ["price"]}}]}), [],
     ["steps[0].lookahead.horizon: '30x' is not a row count or a time span like '30s'"]),
    ("calendar horizon", table({"steps": [{"lookahead": {"horizon": "1M", "columns": ["price"]}}]}), [],
     ["steps[0].lookahead.horizon: ", "'1M'"]),
    ("unknown step", table({"steps": [{"resample": {}}]}), [],
     ["steps[0]: not a step: use one of dedup, lookahead, map, lookback, lookahead_map"]),
    ("unknown feature", table({"steps": [{"lookahead": {"horizon": "5s", "columns": ["price"], "features": ["median"]}}]}),
     [], ["steps[0].lookahead.features: unknown feature 'median'"]),
    ("bad override", table({}), ["--set", "steps.3.lookahead.horizon=1s"],
     ["--set steps.3.lookahead.horizon: steps.3: no list item '3' (has 1)"]),
    # table data
    ("no files", table({"input": {"format": "parquet", "path": "nowhere/*.parquet", "time": "ts"}}), [],
     ["input.path: nowhere/*.parquet: matches no .parquet files"]),
    ("empty input", table({"input": {"format": "parquet", "path": "empty", "time": "ts"}}), [],
     ["input.path: empty: the input has no rows"]),
    ("missing column", table({"steps": [{"lookahead": {"horizon": "5s", "columns": ["volume"]}}]}), [],
     ["steps[0].lookahead.columns: ", "'volume'"]),
    ("unsorted time", table({"input": {"format": "parquet", "path": "unsorted", "time": "ts"}}), [],
     ["input.time: ", "'ts' is not sorted: row 1 of partition 0", "has time 2026-01-02 09:30:48, before 2026-01-02 09:30:49"]),
    ("NaT time", table({"input": {"format": "parquet", "path": "nat", "time": "ts"}}), [],
     ["input.time: ", "'ts'", "missing time (NaT) at row 7"]),
    ("mixed timezones", table({"input": {"format": "csv", "path": "mixed_tz.csv", "time": "ts"}}), [],
     ["input.time: column 'ts': not a time"]),
    ("time not a time", table({"input": {"format": "parquet", "path": "numeric_time", "time": "ts"}}), [],
     ["input.time: column 'ts' is int64, not a time"]),
    ("non-numeric feature column", table({"steps": [{"lookahead": {"horizon": "5s", "columns": ["symbol"]}}]}),
     [], ["steps[0].lookahead", "'symbol'", "not numeric (dtype str"]),
    ("non-numeric summary column", table({"summary": {"columns": ["symbol"]}}), [],
     ["summary", "'symbol'", "not numeric (dtype str"]),
    ("keyed rows horizon longer than every key", table(
        {"steps": [{"lookahead": {"horizon": 25, "columns": ["price"], "by": "symbol"}}]}), [],
     ["steps[0].lookahead.horizon: 25 rows is not less than the 25 rows of the largest key (by=symbol)"]),
    ("horizon longer than the data", table({"steps": [{"lookahead": {"horizon": "2h", "columns": ["price"]}}]}),
     [], ["steps[0].lookahead.horizon: 2h is longer than the data's time span (0 days 00:00:49)"]),
    ("corrupt Parquet", table({"input": {"format": "parquet", "path": "corrupt", "time": "ts"}}), [],
     ["input.path: ", "corrupt/part-0.parquet: cannot read as Parquet"]),
    ("output path under a file", table({"output": {"path": "afile/x"}}), [],
     ["output.path: afile/x: ", "/afile is a file, not a folder"]),
    ("output exists", table({"output": {"path": "ticks"}}), [],
     ["output.path: ", "/ticks already exists; set overwrite: true to replace it"]),
    ("map not importable", table({"steps": [{"map": {"function": "nosuchpkg.features:spread"}}]}), [],
     ["steps[0].map.function: cannot import 'nosuchpkg.features:spread': ModuleNotFoundError"]),
    ("map function missing", table({"steps": [{"map": {"function": "json:nope"}}]}), [],
     ["steps[0].map.function: 'json' has no function 'nope'"]),
    ("corrupt summary state", table({"summary": {"columns": ["price"], "state": "state.json"}}), [],
     ["summary.state: state.json: not a readable JSON state"]),
    ("corrupt summary state batch file", table({"summary": {"columns": ["price"], "state": "state_folder"}}), [],
     ["summary.state: state_folder/0123abcd.json: not a readable JSON state"]),
    ("summary state under a file", table({"summary": {"columns": ["price"], "state": "afile/state"}}), [],
     ["summary.state: afile/state: ", "/afile is a file, not a folder"]),
    # matrices
    (".npy holding a pickle", matrices({"format": "npy", "path": "pickled"}), [],
     ["pickled/b.npy: a pickled (object) array"]),
    (".npz that is a pickle", matrices({"format": "npz", "path": "pickle.npz"}), [], ["pickle.npz: "]),
    ("mismatched matrix rows", matrices({"format": "npy", "path": "rows"}), [],
     ["rows/b.npy", "4 rows, expected 3 like the others"]),
    ("NaN matrix", matrices({"format": "npy", "path": "nan"}), [], ["nan/b.npy", "contains NaN or inf"]),
    ("1-D array", matrices({"format": "npy", "path": "flat"}), [], ["flat/b.npy", "not 2-D (shape (5,))"]),
    ("no columns", matrices({"format": "npy", "path": "nocols"}), [], ["nocols/b.npy", "fewer than 1 column (shape (3, 0))"]),
    ("missing matrix folder", matrices({"format": "npy", "path": "nothing_here"}), [],
     ["input.path: nothing_here: not found"]),
    # clusters
    ("unreachable scheduler", table({"cluster": {"timeout": "1s"}}), ["--scheduler", UNREACHABLE],
     [f"scheduler {UNREACHABLE} (from --scheduler): not reachable"]),
    ("tls:// without certificates", table({"cluster": {"address": UNREACHABLE.replace("tcp", "tls")}}), [],
     [UNREACHABLE.replace("tcp", "tls"), "needs cluster.tls with ca_file, cert and key"]),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    make_files(root)
    return root


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_at_least_twenty_kinds():
    assert len(CASES) >= 20


def run_case(config: dict | str | None, args: list[str], workspace: Path, capsys) -> str:
    """Run a config as the CLI does; check exit 2, one line, no traceback, nothing written."""
    path = workspace / "case.yaml"
    if config is not None:
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    before = tree(workspace)
    code = main(["run", str(path), *args])
    path.unlink(missing_ok=True)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert tree(workspace) == [p for p in before if p != "case.yaml"], "something was written"
    return lines[0]


@pytest.mark.parametrize("name, config, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, config, args, expected, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    line = run_case(config, args, workspace, capsys)
    for text in expected:
        assert text in line, line


def test_map_function_importable_here_but_not_on_the_workers(workspace, capsys, monkeypatch, tmp_path):
    """A module on this process's sys.path only: worker processes started before cannot import it."""
    from distributed import LocalCluster

    monkeypatch.chdir(workspace)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        (tmp_path / "only_here_funcs.py").write_text("def spread(df):\n    return df\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        config = table({"steps": [{"map": {"function": "only_here_funcs:spread"}}]})
        line = run_case(config, ["--scheduler", cluster.scheduler_address], workspace, capsys)
    assert line.startswith("error: steps[0].map.function: on worker tcp://127.0.0.1:"), line
    assert "cannot import 'only_here_funcs:spread': ModuleNotFoundError: No module named 'only_here_funcs'" in line


def test_summary_state_refuses_the_same_input_twice(workspace, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(workspace)
    state = tmp_path / "state.json"
    config = table({"summary": {"columns": ["price"], "state": str(state)}})
    del config["output"]
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path)]) == 0
    saved = {f.name: f.read_bytes() for f in state.iterdir()}
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: summary.state: {state}: input 'ticks' (fingerprint "), err
    assert "is already merged into the summary state" in err and len(err.strip().splitlines()) == 1
    assert {f.name: f.read_bytes() for f in state.iterdir()} == saved and len(saved) == 1
    assert json.loads(next(iter(saved.values())))["sources"][0]["path"] == "ticks"


def test_a_keyed_rows_horizon_shorter_than_the_largest_key_runs(workspace, monkeypatch):
    """The refusal above is for every key: 24 rows fit the 25 rows of each key, so the run goes on."""
    import flows

    monkeypatch.chdir(workspace)
    config = table({"steps": [{"lookahead": {"horizon": 24, "columns": ["price"], "by": "symbol"}}]})
    result = flows.run(config)
    frame = pd.read_parquet(result.output)
    assert frame["price_change_24r"].notna().sum() == 2  # the first row of each key has a full window
