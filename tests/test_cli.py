"""The `dask-flows` command: real runs, bad configs (exit 2, one line, nothing written), clusters."""

from __future__ import annotations

import os

from dask.dataframe.utils import assert_eq
import pandas as pd
import pytest
import yaml
from conftest import free_port, run_cli

from flows.cli import main

SMALL = {
    "flow": "table",
    "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": False},
    "input": {"format": "synthetic", "rows": 3000, "symbols": 3, "npartitions": 5, "seed": 1},
    "steps": [
        {"dedup": {"subset": ["price", "size"], "by": "symbol"}},
        {"lookahead": {"horizon": "30s", "columns": ["price"], "features": ["change", "max", "min"],
                       "by": "symbol"}},
    ],
    "output": {"path": "out/features"},
}


def write_config(folder, config=SMALL, name="run.yaml"):
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snapshot(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_steps_and_defaults(capsys):
    code, out, _ = run_main(capsys, "list")
    assert code == 0
    for text in ("dedup:", "lookahead:", "map:", "horizon", "nan_equal", "default True", "tile", "synthetic:"):
        assert text in out


def test_validate(tmp_path, capsys):
    code, out, _ = run_main(capsys, "validate", write_config(tmp_path))
    assert (code, out.strip()) == (0, f"{tmp_path / 'run.yaml'}: valid table flow")


def test_dry_run_computes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "run", write_config(tmp_path), "--dry-run")
    assert code == 0, err
    assert "dry run" in out and "steps[1].lookahead" in out and "graph:" in out
    assert snapshot(tmp_path) == ["run.yaml"]


def test_run_publishes_output_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "run", write_config(tmp_path), "--report", "report.html")
    assert code == 0, err
    assert (tmp_path / "out/features/_SUCCESS").exists()
    assert (tmp_path / "report.html").exists()
    assert "steps[0].dedup" in out and "rows in" in out
    table = pd.read_parquet(tmp_path / "out/features")
    assert {"price_change_30s", "price_max_30s", "price_min_30s"} <= set(table.columns)
    assert not [p for p in os.listdir(tmp_path / "out") if ".tmp-" in p]
    # a second run without overwrite is refused and leaves the output as it was
    before = snapshot(tmp_path / "out")
    code, _, err = run_main(capsys, "run", write_config(tmp_path))
    assert code == 2 and "output.path" in err and "already exists" in err
    assert snapshot(tmp_path / "out") == before
    # --set output.overwrite=true replaces it
    code, _, err = run_main(capsys, "run", write_config(tmp_path), "--set", "output.overwrite=true",
                            "--set", "steps.1.lookahead.horizon=60s")
    assert code == 0, err
    assert "price_change_60s" in pd.read_parquet(tmp_path / "out/features").columns


def bad_configs(tmp_path):
    """(name, config changes, extra CLI args, text the one-line error must contain)."""
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.parquet").write_bytes(b"PAR1 this is not parquet")
    table = tmp_path / "table"
    table.mkdir()
    pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=5, freq="s"), "price": 1.0}).to_parquet(
        table / "a.parquet"
    )
    return [
        ("unknown key", {"outptu": {}}, [], "outptu: unknown key"),
        ("nested unknown key", {"steps": [{"dedup": {"subst": ["price"]}}]}, [], "steps[0].dedup.subst: unknown key"),
        ("wrong type", {"cluster": {"n_workers": "many"}}, [], "cluster.n_workers"),
        ("bad horizon", {"steps": [{"lookahead": {"horizon": "30x", "columns": ["price"]}}]}, [],
         "steps[0].lookahead.horizon: '30x' is not a row count or a time span like '30s'"),
        ("missing input", {"input": {"format": "parquet", "path": str(tmp_path / "nope"), "time": "ts"}}, [],
         "nope"),
        ("output exists", {"output": {"path": str(existing)}}, [], "already exists"),
        ("bad map module", {"steps": [{"map": {"function": "no_such_module:f"}}]}, [],
         "steps[0].map.function: cannot import 'no_such_module:f'"),
        ("bad map name", {"steps": [{"map": {"function": "userfuncs:nope"}}]}, [],
         "steps[0].map.function: 'userfuncs' has no function 'nope'"),
        ("unknown column", {"steps": [{"lookahead": {"horizon": 5, "columns": ["volume"]}}]}, [], "volume"),
        ("missing time column", {"input": {"format": "parquet", "path": str(table), "time": "when"}}, [], "input.time"),
        ("unknown step", {"steps": [{"resample": {}}]}, [], "steps[0]: not a step"),
        ("corrupt parquet", {"input": {"format": "parquet", "path": str(corrupt)}}, [], "a.parquet"),
        ("unreachable scheduler", {"cluster": {"timeout": "2s"}}, ["--scheduler", f"tcp://127.0.0.1:{free_port()}"],
         "not reachable"),
    ]


def test_bad_configs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    cases = bad_configs(tmp_path)
    assert len(cases) >= 10
    for name, change, args, expected in cases:
        config = {**SMALL, **change}
        path = write_config(tmp_path, config, "bad.yaml")
        before = snapshot(tmp_path)
        code, out, err = run_main(capsys, "run", path, *args)
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (name, err)
        assert "Traceback" not in err
        assert snapshot(tmp_path) == before, name


def test_console_script_error_has_no_traceback(tmp_path):
    path = write_config(tmp_path, {**SMALL, "cluster": {"n_workers": "x"}})
    result = run_cli("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_failing_function_leaves_no_output(tmp_path, capsys, monkeypatch):
    """A run that dies mid-write (a user function raising) publishes nothing, temp files removed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    meta = {"ts": "datetime64[ns]", "symbol": "str", "price": "float64", "size": "float64"}
    config = {**SMALL, "steps": [{"map": {"function": "userfuncs:explode", "meta": meta}}]}
    code, _, err = run_main(capsys, "run", write_config(tmp_path, config))
    assert code == 1 and "boom" in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == ["run.yaml"]


def test_scheduler_processes_equal_local_cluster(tmp_path, dask_processes):
    """A run on a real `dask scheduler` + 2 `dask worker` processes equals the LocalCluster run."""
    config = {**SMALL, "steps": [*SMALL["steps"], {"map": {"function": "userfuncs:add_spread"}}]}
    path = write_config(tmp_path, config)
    local = run_cli("run", str(path), "--set", "output.path=local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    remote = run_cli("run", str(path), "--set", "output.path=remote", "--scheduler", dask_processes.address,
                     cwd=tmp_path)
    assert remote.returncode == 0, remote.stderr
    assert dask_processes.address in remote.stdout
    env = run_cli("run", str(path), "--set", "output.path=env", cwd=tmp_path,
                  DASK_SCHEDULER_ADDRESS=dask_processes.address)
    assert env.returncode == 0 and dask_processes.address in env.stdout
    expected = pd.read_parquet(tmp_path / "local")
    for name in ("remote", "env"):
        assert_eq(pd.read_parquet(tmp_path / name), expected, check_index=False)
