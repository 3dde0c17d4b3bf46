"""A new step is one params model + one function + one register_step call: config, CLI and flow follow."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

import flows
from flows import registry
from flows.cli import main
from flows.config import ConfigError, Strict, load_config


class ScaleParams(Strict):
    """``scale``: multiply a column by a factor (a toy step of the tests)."""

    column: str
    factor: float = 2.0


def scale_step(df, params: ScaleParams, ctx: registry.StepContext):
    return df.assign(**{f"{params.column}_scaled": df[params.column] * params.factor})


@pytest.fixture
def scale():
    spec = registry.register_step("scale", ScaleParams, scale_step)
    yield spec
    registry.unregister_step("scale")


def test_a_registered_step_runs_from_yaml(scale, tmp_path, capsys):
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-02", periods=40, freq="s"), "price": range(40)})
    (tmp_path / "in").mkdir()
    frame.to_parquet(tmp_path / "in/part.parquet")
    config = {
        "flow": "table", "cluster": {"n_workers": 1, "processes": False},
        "input": {"format": "parquet", "path": str(tmp_path / "in"), "time": "ts"},
        "steps": [{"scale": {"column": "price", "factor": 3}}],
        "output": {"path": str(tmp_path / "out")},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = flows.run(str(path))
    assert [s.name for s in result.steps][:2] == ["input", "steps[0].scale"]
    out = pd.read_parquet(tmp_path / "out")
    pd.testing.assert_series_equal(out["price_scaled"], frame["price"] * 3.0, check_names=False)
    # its params are validated with their key path, like a built-in step's
    with pytest.raises(ConfigError, match=r"steps\[0\]\.scale\.factr: unknown key"):
        load_config(config, {"steps.0.scale.factr": 1})
    # and `dask-flows list` shows it with its parameters
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  scale: multiply a column by a factor" in out and "factor: float (default 2.0)" in out


def test_unknown_step_lists_the_registered_ones(scale):
    with pytest.raises(ConfigError, match="steps\\[0\\]: not a step: use one of dedup, lookahead, map, lookback, lookahead_map, scale"):
        load_config({"flow": "table", "input": {"format": "synthetic"}, "steps": [{"scael": {}}],
                     "output": {"path": "x"}})


def test_a_name_is_registered_once(scale):
    with pytest.raises(ValueError, match="already registered"):
        registry.register_step("scale", ScaleParams, scale_step)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_flow("table", Strict, lambda c: c, lambda *a, **k: None, "again")


def test_flows_are_registered():
    assert {"table", "compare"} <= set(registry.flows())
    assert main(["list"]) == 0
