"""Cluster managers from config (``cluster.manager``): a real SLURM through dask-jobqueue, the
dry run's job script, and bad managers and options (exit 2, the key named)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_cli
from dask.dataframe.utils import assert_eq
from slurm import slurm  # noqa: F401  (the session fixture)

import flows
from flows.config import ConfigError, parse_config

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is in the dev extra")

SLURM_OPTIONS = {
    "queue": "debug", "cores": 1, "memory": "2GiB", "walltime": "00:10:00",
    "scheduler_options": {"host": "127.0.0.1", "dashboard_address": ":0"},
}


def quickstart(tmp_path, cluster: dict, output: str) -> dict:
    config = yaml.safe_load((REPO / "configs/quickstart.yaml").read_text())
    return {**config, "cluster": cluster, "output": {"path": str(tmp_path / output)}}


def slurm_cluster(**extra) -> dict:
    return {"manager": "dask_jobqueue.SLURMCluster", "options": dict(SLURM_OPTIONS), "scale": 2, **extra}


def write(tmp_path, config: dict, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_quickstart_on_slurm_equals_a_local_cluster(tmp_path, slurm, monkeypatch):  # noqa: F811
    """Two SLURM jobs (real sbatch) run the quickstart; output and summary equal a LocalCluster's."""
    for name, value in slurm.env.items():
        monkeypatch.setenv(name, value)
    cluster = slurm_cluster(timeout="120s")
    cluster["options"]["log_directory"] = str(tmp_path / "slurm-logs")
    on_slurm = flows.run(quickstart(tmp_path, cluster, "slurm"))
    local = flows.run(quickstart(tmp_path, {"n_workers": 2}, "local"))
    assert_eq(pd.read_parquet(tmp_path / "slurm"), pd.read_parquet(tmp_path / "local"), check_index=False)
    assert_eq(on_slurm.summary, local.summary)
    assert [s.rows_out for s in on_slurm.steps] == [s.rows_out for s in local.steps]
    assert len(list((tmp_path / "slurm-logs").glob("*.err"))) == 2  # two real jobs ran
    deadline = time.monotonic() + 30  # the run cancelled the jobs it started
    while slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slurm.jobs() == []


def test_dry_run_with_slurm_submits_nothing(tmp_path, slurm):  # noqa: F811
    done = run_cli("run", str(write(tmp_path, quickstart(tmp_path, slurm_cluster(), "out"))), "--dry-run",
                   cwd=tmp_path, **slurm.env)
    assert done.returncode == 0, done.stderr
    assert slurm.jobs() == []


def test_dry_run_prints_the_job_script(tmp_path):
    """Without SLURM too: the script is made, nothing submitted, nothing written."""
    done = run_cli("run", str(write(tmp_path, quickstart(tmp_path, slurm_cluster(), "out"))), "--dry-run",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cluster: dask_jobqueue.SLURMCluster, scale 2 workers" in done.stdout
    for line in ("#SBATCH -p debug", "#SBATCH --mem=2G", "#SBATCH -t 00:10:00", "distributed.cli.dask_worker"):
        assert line in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


BAD_MANAGERS = [  # (cluster, key named, text, also refused by --dry-run)
    ({"manager": "no_such_package.Cluster", "scale": 1}, "cluster.manager", "No module named", True),
    ({"manager": "distributed.NoCluster", "scale": 1}, "cluster.manager", "has no 'NoCluster'", True),
    ({"manager": "distributed.Client", "scale": 1}, "cluster.manager", "not a Dask cluster class", True),
    (slurm_cluster(options={**SLURM_OPTIONS, "bogus": 1}), "cluster.options", "bogus", True),
    ({"manager": "distributed.LocalCluster", "options": {"n_workers": "two"}}, "cluster.options",
     "TypeError", False),  # no job script to show: a dry run does not make it
]


@pytest.mark.parametrize(("cluster", "key", "text", "in_dry_run"), BAD_MANAGERS)
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_manager_or_options_exit_2(tmp_path, cluster, key, text, in_dry_run, dry_run):
    path = write(tmp_path, quickstart(tmp_path, cluster, "out"))
    done = run_cli("run", str(path), *(["--dry-run"] if dry_run else []), cwd=tmp_path)
    assert done.returncode == (2 if in_dry_run or not dry_run else 0), (done.stdout, done.stderr)
    if done.returncode == 2:
        assert done.stderr.startswith(f"error: {key}: ") and text in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_any_cluster_class_from_config(tmp_path):
    """A manager is any Dask cluster class: here distributed's own LocalCluster, adaptive."""
    cluster = {"manager": "distributed.LocalCluster",
               "options": {"n_workers": 0, "threads_per_worker": 1, "dashboard_address": ":0"},
               "adapt": {"minimum": 1, "maximum": 2}, "timeout": "60s"}
    managed = flows.run(quickstart(tmp_path, cluster, "managed"))
    local = flows.run(quickstart(tmp_path, {"n_workers": 2}, "local"))
    assert_eq(pd.read_parquet(tmp_path / "managed"), pd.read_parquet(tmp_path / "local"), check_index=False)
    assert_eq(managed.summary, local.summary)


def test_workers_that_never_come_end_the_run_naming_the_timeout(tmp_path):
    cluster = {"manager": "distributed.LocalCluster", "options": {"n_workers": 0, "dashboard_address": ":0"},
               "timeout": "1s"}
    done = run_cli("run", str(write(tmp_path, quickstart(tmp_path, cluster, "out"))), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cluster.timeout: 0 of 1 workers of distributed.LocalCluster")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ({"scale": 2}, "cluster.scale: needs cluster.manager"),
        ({"options": {"queue": "x"}}, "cluster.options: needs cluster.manager"),
        ({"adapt": {"maximum": 3}}, "cluster.adapt: needs cluster.manager"),
        ({"manager": "SLURMCluster"}, "cluster.manager: 'SLURMCluster' is not a class path"),
        ({"manager": "a.B", "n_workers": 3}, "cluster.n_workers: a LocalCluster setting"),
        ({"manager": "a.B", "processes": False}, "cluster.processes: a LocalCluster setting"),
        ({"manager": "a.B", "kind": "cuda"}, "cluster.kind: a LocalCluster setting"),
        ({"manager": "a.B", "address": "tcp://h:1"}, "cluster.address: for an existing scheduler"),
        ({"manager": "a.B", "scale": 2, "adapt": {"maximum": 3}}, "cluster.adapt: give cluster.scale or"),
        ({"manager": "a.B", "adapt": {"minimum": 4, "maximum": 3}}, "cluster.adapt.maximum: is below minimum"),
        ({"manager": "a.B", "scale": -1}, "cluster.scale: Input should be greater than or equal to 0"),
    ],
)
def test_cluster_config_names_the_key(cluster, message):
    raw = {"flow": "table", "input": {"format": "synthetic"}, "output": {"path": "x"}, "cluster": cluster}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert str(error.value).startswith(f"<config>: {message}"), str(error.value)


def test_scheduler_flag_wins_over_a_manager(tmp_path, dask_processes):
    """Precedence stays: --scheduler (or the environment) is used; the manager is not started."""
    config = quickstart(tmp_path, slurm_cluster(), "out")
    config["cluster"]["manager"] = "no_such_package.Cluster"  # would exit 2 if it were imported
    path = write(tmp_path, config)
    done = run_cli("run", str(path), "--scheduler", dask_processes.address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = run_cli("run", str(path), "--set", "output.path=env", cwd=tmp_path,
                  DASK_SCHEDULER_ADDRESS=dask_processes.address)
    assert env.returncode == 0, env.stderr
    assert_eq(pd.read_parquet(tmp_path / "out"), pd.read_parquet(tmp_path / "env"))
