"""The table of bad inputs (also in the README): each exits 2 with one line naming the culprit,
prints no traceback, and writes nothing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

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
    (root / "corrupt").mkdir()
    (root / "corrupt/part-0.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    (root / "mixed_tz.csv").write_text(
        "ts,price\n2026-01-02T09:30:00+01:00,1.0\n2026-01-02T09:30:01+02:00,2.0\n")
    (root / "numeric_time").mkdir()
    ticks().assign(ts=np.arange(50)).to_parquet(root / "numeric_time/part-0.parquet")
    (root / "state.json").write_text("{not json")
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


# (id, config or raw text, extra CLI args, text the error line must contain)
CASES = [
    # config
    ("malformed YAML", "flow: table\ninput: {format: parquet\n", [], "malformed YAML at line"),
    ("unknown key", table({"outptu": {}}), [], "outptu: unknown key"),
    ("wrong type", table({"cluster": {"n_workers": "two"}}), [], "cluster.n_workers"),
    ("bad horizon", table({"steps": [{"lookahead": {"horizon": "30x", "columns": ["price"]}}]}), [],
     "steps[0].lookahead.horizon: '30x' is not a row count or a time span like '30s'"),
    ("calendar horizon", table({"steps": [{"lookahead": {"horizon": "1M", "columns": ["price"]}}]}), [],
     "steps[0].lookahead.horizon"),
    ("unknown step", table({"steps": [{"resample": {}}]}), [], "steps[0]: not a step"),
    ("bad override", table({}), ["--set", "steps.3.lookahead.horizon=1s"], "--set steps.3.lookahead.horizon"),
    # table data
    ("no files", table({"input": {"format": "parquet", "path": "nowhere/*.parquet", "time": "ts"}}), [],
     "nowhere/*.parquet: matches no .parquet files"),
    ("empty input", table({"input": {"format": "parquet", "path": "empty", "time": "ts"}}), [],
     "the input has no rows"),
    ("missing column", table({"steps": [{"lookahead": {"horizon": "5s", "columns": ["volume"]}}]}), [], "volume"),
    ("unsorted time", table({"input": {"format": "parquet", "path": "unsorted", "time": "ts"}}), [],
     "ts"),
    ("mixed timezones", table({"input": {"format": "csv", "path": "mixed_tz.csv", "time": "ts"}}), [],
     "input.time: column 'ts'"),
    ("time not a time", table({"input": {"format": "parquet", "path": "numeric_time", "time": "ts"}}), [],
     "input.time: column 'ts' is int64, not a time"),
    ("non-numeric feature column", table({"steps": [{"lookahead": {"horizon": "5s", "columns": ["symbol"]}}]}),
     [], "symbol"),
    ("non-numeric summary column", table({"summary": {"columns": ["symbol"]}}), [], "symbol"),
    ("horizon longer than the data", table({"steps": [{"lookahead": {"horizon": "2h", "columns": ["price"]}}]}),
     [], "steps[0].lookahead.horizon: 2h is longer than the data's time span"),
    ("corrupt Parquet", table({"input": {"format": "parquet", "path": "corrupt", "time": "ts"}}), [],
     "part-0.parquet"),
    ("output exists", table({"output": {"path": "ticks"}}), [], "output.path"),
    ("map not importable", table({"steps": [{"map": {"function": "nosuchpkg.features:spread"}}]}), [],
     "steps[0].map.function: cannot import 'nosuchpkg.features:spread'"),
    ("corrupt summary state", table({"summary": {"columns": ["price"], "state": "state.json"}}), [],
     "summary.state"),
    # matrices
    (".npy holding a pickle", matrices({"format": "npy", "path": "pickled"}), [], "b.npy"),
    (".npz that is a pickle", matrices({"format": "npz", "path": "pickle.npz"}), [], "pickle.npz"),
    ("mismatched matrix rows", matrices({"format": "npy", "path": "rows"}), [], "b"),
    ("NaN matrix", matrices({"format": "npy", "path": "nan"}), [], "b"),
    ("1-D array", matrices({"format": "npy", "path": "flat"}), [], "b"),
    ("no columns", matrices({"format": "npy", "path": "nocols"}), [], "b"),
    ("missing matrix folder", matrices({"format": "npy", "path": "nothing_here"}), [], "nothing_here"),
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


@pytest.mark.parametrize("name, config, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, config, args, expected, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    path = workspace / "case.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    before = tree(workspace)
    code = main(["run", str(path), *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert tree(workspace) == before, "something was written"


def test_summary_state_refuses_the_same_input_twice(workspace, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(workspace)
    state = tmp_path / "state.json"
    config = table({"summary": {"columns": ["price"], "state": str(state)}})
    del config["output"]
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path)]) == 0
    saved = state.read_text()
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "summary.state" in err and len(err.strip().splitlines()) == 1
    assert state.read_text() == saved
    assert json.loads(saved)["sources"][0]["path"] == "ticks"
