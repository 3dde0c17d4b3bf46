"""The window steps from YAML: ``lookback``, ``lookahead`` with ``barrier`` and the new features,
and ``lookahead_map``, through :func:`flows.run` against the plain references, and their bad
inputs through the CLI (exit 2, one line naming the key)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from reference import reference_future_features
from reference_windows import reference_future_window_features, reference_past_features
from test_bad_inputs import make_files, run_case, table

import flows

IN_PROCESS = {"n_workers": 2, "threads_per_worker": 1, "processes": False}


def ticks(rows: int = 600, seed: int = 5) -> pd.DataFrame:
    """Two symbols, repeated times, small price moves (barriers of 0.1 % and 0.05 % are touched, or not), NaN."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-01-02 09:30") + pd.to_timedelta(
            np.sort(rng.integers(0, 300, rows)), unit="s"),
        "symbol": rng.choice(["A", "B"], rows),
        "price": 100 + rng.normal(0, 0.02, rows).cumsum(),
    })
    frame.loc[rng.random(rows) < 0.05, "price"] = np.nan
    return frame


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    """``ticks()`` in 5 Parquet files (5 partitions that split both symbols)."""
    root = tmp_path_factory.mktemp("window-steps") / "ticks"
    root.mkdir()
    frame = ticks()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 5)):
        frame.iloc[part].to_parquet(root / f"part-{i}.parquet")
    return root, frame


def run(steps: list[dict], parquet, tmp_path) -> pd.DataFrame:
    root, _ = parquet
    config = {"flow": "table", "cluster": IN_PROCESS,
              "input": {"format": "parquet", "path": str(root), "time": "ts"},
              "steps": steps, "output": {"path": str(tmp_path / "out"), "overwrite": True}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return pd.read_parquet(flows.run(str(path)).output)


def same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False,
                                  check_exact=False, rtol=1e-9, atol=0)


def test_lookback_steps(parquet, tmp_path):
    _, frame = parquet
    steps = [
        {"lookback": {"horizon": "20s", "columns": ["price"], "features": ["mean", "max", "count", "std"],
                      "by": "symbol"}},
        {"lookback": {"horizon": 4, "columns": ["price"], "features": ["sum", "min"], "by": "symbol",
                      "partial": True}},
    ]
    expected = reference_past_features(frame, "20s", "price", ["mean", "max", "count", "std"],
                                       by="symbol", time="ts")
    expected = reference_past_features(expected, 4, "price", ["sum", "min"], by="symbol",
                                       time="ts", partial=True)
    got = run(steps, parquet, tmp_path)
    assert got["price_count_past_20s"].notna().any() and got["price_sum_past_4r"].notna().all()
    same(got, expected)


@pytest.mark.parametrize("horizon", ["15s", 6])
def test_lookahead_barrier_and_new_features(parquet, tmp_path, horizon):
    _, frame = parquet
    features = ["std", "time_to_max", "time_to_min", "barrier"]
    steps = [{"lookahead": {"horizon": horizon, "columns": ["price"], "features": features,
                            "by": "symbol", "barrier": {"up": 0.001, "down": 0.0005}}}]
    expected = reference_future_window_features(frame, horizon, "price", features, by="symbol",
                                                time="ts", barrier=(0.001, 0.0005))
    got = run(steps, parquet, tmp_path)
    labels = got[f"price_barrier_{horizon if isinstance(horizon, str) else f'{horizon}r'}"]
    assert set(labels.dropna().unique()) == {-1.0, 0.0, 1.0}  # all three outcomes occur
    same(got, expected)


def test_lookahead_map_step(parquet, tmp_path):
    _, frame = parquet
    steps = [{"lookahead_map": {"function": "window_funcs:next_max", "horizon": 3, "by": "symbol",
                                "kwargs": {"rows": 3},
                                "meta": {"ts": "datetime64[us]", "symbol": "str",
                                         "price": "float64", "price_next_max": "float64"}}}]
    expected = reference_future_features(frame, 3, "price", ["max"], by="symbol", partial=True)
    expected = expected.rename(columns={"price_max_3r": "price_next_max"})
    same(run(steps, parquet, tmp_path), expected)


def test_lookahead_map_step_infers_its_meta(parquet, tmp_path):
    _, frame = parquet
    steps = [{"lookahead_map": {"function": "window_funcs:next_value", "horizon": 1,
                                "by": "symbol", "kwargs": {"column": "price"}}}]
    expected = reference_future_features(frame, 1, "price", ["future"], by="symbol")
    expected = expected.rename(columns={"price_future_1r": "price_next"})
    same(run(steps, parquet, tmp_path), expected)


def test_ticks_config_runs_with_lookback_and_barrier(tmp_path):
    """configs/ticks.yaml on the quickstart's output runs; its barrier labels and past windows
    equal the references on its (deduplicated) rows."""
    quick = flows.run("configs/quickstart.yaml", overrides={
        "input.rows": 8000, "cluster": IN_PROCESS, "output.path": str(tmp_path / "quick")})
    result = flows.run("configs/ticks.yaml", overrides={
        "input.path": quick.output, "cluster": IN_PROCESS, "output.path": str(tmp_path / "ticks"),
        "summary.state": str(tmp_path / "state.json")})
    got = pd.read_parquet(result.output)
    assert set(got["price_barrier_5min"].dropna().unique()) <= {-1.0, 0.0, 1.0}
    assert got["price_mean_past_30s"].notna().any()
    base = got[["ts", "symbol", "price", "size"]]
    expected = reference_future_window_features(
        base, "5min", "price", ["barrier"], by="symbol", time="ts", barrier=(0.002, 0.001))
    expected = reference_past_features(expected, "30s", ["price"], ["mean", "max"], by="symbol",
                                       time="ts")
    same(got[list(expected.columns)], expected)


# ----------------------------------------------------------------------------------------------
# bad inputs: exit 2, one line naming the key (the README's table of bad inputs)
def lookahead(**params) -> dict:
    return table({"steps": [{"lookahead": {"horizon": "5s", "columns": ["price"], **params}}]})


BAD = [
    ("lookback non-numeric column",
     table({"steps": [{"lookback": {"horizon": "5s", "columns": ["symbol"]}}]}),
     ["steps[0].lookback", "'symbol'", "not numeric (dtype str"]),
    ("lookback unknown feature",
     table({"steps": [{"lookback": {"horizon": 5, "columns": ["price"], "features": ["median"]}}]}),
     ["steps[0].lookback.features: ", "unknown feature 'median' (known: count, sum, mean, std, var"]),
    ("lookback bad horizon",
     table({"steps": [{"lookback": {"horizon": "30x", "columns": ["price"]}}]}),
     ["steps[0].lookback.horizon: '30x' is not a row count or a time span like '30s'"]),
    ("lookback missing column",
     table({"steps": [{"lookback": {"horizon": "5s", "columns": ["volume"]}}]}),
     ["steps[0].lookback.columns: ", "'volume'"]),
    ("barrier missing", lookahead(features=["barrier"]),
     ["steps[0].lookahead.barrier: ", "the barrier feature needs barrier: {up: ..., down: ...}"]),
    ("barrier zero", lookahead(features=["barrier"], barrier={"up": 0, "down": 0.01}),
     ["steps[0].lookahead.barrier.up: ", "greater than 0"]),
    ("barrier negative", lookahead(features=["barrier"], barrier={"up": 0.01, "down": -0.01}),
     ["steps[0].lookahead.barrier.down: ", "greater than 0"]),
    ("barrier without down", lookahead(features=["barrier"], barrier={"up": 0.01}),
     ["steps[0].lookahead.barrier.down: field required"]),
    ("lookahead unknown feature", lookahead(features=["time_to_median"]),
     ["steps[0].lookahead.features: unknown feature 'time_to_median'"]),
    ("horizon out of range", lookahead(horizon="10000000000000D"),
     ["steps[0].lookahead.horizon: ", "is out of range"]),
    ("lookahead_map not importable",
     table({"steps": [{"lookahead_map": {"function": "nosuchpkg.labels:make", "horizon": "30s"}}]}),
     ["steps[0].lookahead_map.function: cannot import 'nosuchpkg.labels:make': ModuleNotFoundError"]),
    ("lookahead_map function missing",
     table({"steps": [{"lookahead_map": {"function": "json:nope", "horizon": 3}}]}),
     ["steps[0].lookahead_map.function: 'json' has no function 'nope'"]),
    ("lookahead_map output not inferable",
     table({"steps": [{"lookahead_map": {"function": "window_funcs:needs_bid", "horizon": 3}}]}),
     ["steps[0].lookahead_map.meta: cannot infer the output of 'needs_bid' on a fake partition (KeyError: 'bid')",
      "pass `meta`"]),
    ("lookahead_map bad horizon",
     table({"steps": [{"lookahead_map": {"function": "json:dumps", "horizon": "1M"}}]}),
     ["steps[0].lookahead_map.horizon: ", "'1M'"]),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-window-inputs")
    make_files(root)
    return root


@pytest.mark.parametrize("name, config, expected", BAD, ids=[c[0] for c in BAD])
def test_bad_input(name, config, expected, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    line = run_case(config, [], workspace, capsys)
    for text in expected:
        assert text in line, line


def test_lookahead_map_function_importable_here_but_not_on_the_workers(workspace, capsys,
                                                                      monkeypatch, tmp_path):
    """The same import check on the workers as ``map``'s, naming this step's key."""
    from distributed import LocalCluster

    monkeypatch.chdir(workspace)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        (tmp_path / "only_here_labels.py").write_text(
            "def make(frame, n_own):\n    return frame.iloc[:n_own]\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        config = table({"steps": [{"lookahead_map": {"function": "only_here_labels:make",
                                                     "horizon": "30s"}}]})
        line = run_case(config, ["--scheduler", cluster.scheduler_address], workspace, capsys)
    assert line.startswith("error: steps[0].lookahead_map.function: on worker tcp://"), line
    assert "cannot import 'only_here_labels:make': ModuleNotFoundError" in line


def test_list_shows_the_window_steps_and_their_parameters(capsys):
    from flows.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for line in (
        "  lookback: past-window features per key",
        "    features: list[str] (default ['mean']; any of count, sum, mean, std, var, min, max)",
        "std, time_to_max, time_to_min, barrier)",
        "    barrier: BarrierLevels | None (default None; {up: float > 0, down: float > 0}",
        "  lookahead_map: ``module:function(frame, n_own, **kwargs)``",
    ):
        assert line in out, line
    lookahead_map = out.split("  lookahead_map:")[1].split("\n\n")[0]
    for name in ("function", "horizon", "by", "kwargs", "meta"):
        assert f"    {name}: " in lookahead_map
    lookback = out.split("  lookback:")[1].split("  lookahead_map:")[0]
    for name in ("horizon", "columns", "features", "by", "partial"):
        assert f"    {name}: " in lookback
