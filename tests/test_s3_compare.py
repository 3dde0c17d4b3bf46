"""The compare flow and publishing on a real S3-compatible server (moto on 127.0.0.1): matrices
read from ``s3://``, the Zarr store written there by worker processes whose working directory is
not the client's, resume after a killed run and a SIGKILLed worker; a failed table run leaves the
previous S3 output readable."""

from __future__ import annotations

import io
import os
import re
import signal
import time

import numpy as np
import pandas as pd
import pytest
from conftest import DaskProcesses
from s3 import s3  # noqa: F401  (the session fixture)
from test_reliability import finish, start_cli, write_wide_ticks
from test_s3_table import client_elsewhere, table_config  # noqa: F401  (a fixture)

import flows
from flows.compare import all_pairs
from flows.matrices import matrix_shapes, synthetic_matrices
from flows.publish import SUCCESS, read_manifest
from pipelines.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:Object at _SUCCESS is not recognized")
MATRICES = {"n": 100, "rows": 4, "min_len": 12, "max_len": 30, "seed": 3}


def put_npy_folder(s3, bucket: str) -> list[np.ndarray]:  # noqa: F811
    """The synthetic matrices as ``s3://bucket/in/<name>.npy``; the arrays."""
    names, arrays = synthetic_matrices(**MATRICES)
    for name, array in zip(names, arrays):
        buffer = io.BytesIO()
        np.save(buffer, array)
        s3.fs.pipe_file(f"{bucket}/in/{name}.npy", buffer.getvalue())
    return arrays


def compare_config(bucket: str, output: str) -> dict:
    return {
        "flow": "compare",
        "input": {"format": "npy", "path": f"s3://{bucket}/in"},
        "compare": {"tile": 16, "device": "cpu"},
        "output": {"path": output},
    }


@pytest.mark.slow  # about a minute under load: two CLI runs, a worker killed and replaced
def test_compare_flow_on_s3_resumes_after_a_killed_run_and_worker(s3, tmp_path, monkeypatch):  # noqa: F811
    bucket = s3.new_bucket()
    arrays = put_npy_folder(s3, bucket)
    expected = all_pairs(arrays, tile=16, device="cpu")  # in memory, undisturbed
    names, shapes = matrix_shapes({"format": "npy", "path": f"s3://{bucket}/in"})  # headers only
    assert len(names) == MATRICES["n"] and shapes[0] == arrays[0].shape
    workers_dir, client_dir = tmp_path / "workers", tmp_path / "client"
    workers_dir.mkdir()
    client_dir.mkdir()
    monkeypatch.chdir(workers_dir)
    cluster = DaskProcesses(n_workers=2, nanny=False)  # after the s3 fixture: they inherit its endpoint
    monkeypatch.chdir(client_dir)
    config = compare_config(bucket, f"s3://{bucket}/out/scores.zarr")
    dry = flows.run(config, dry_run=True)  # metadata only: shapes from the .npy headers
    assert f"{MATRICES['n']} matrices of 4 rows" in dry.graph
    try:
        process = start_cli(client_dir, config, "--scheduler", cluster.address)
        markers = lambda: s3.fs.glob(f"{bucket}/out/scores.zarr.tmp-*/_tiles/*.done")  # noqa: E731
        deadline = time.time() + 120
        while len(markers()) < 6:
            assert process.poll() is None, process.communicate()
            assert time.time() < deadline
            time.sleep(0.05)
        cluster.workers[0].send_signal(signal.SIGKILL)  # a worker mid-run ...
        process.send_signal(signal.SIGKILL)  # ... and the run itself: nothing published
        process.wait()
        assert not s3.fs.exists(f"{bucket}/out/scores.zarr")
        done = len(markers())
        cluster.workers.append(cluster.start_worker(nanny=False))
        code, out, err = finish(start_cli(client_dir, config, "--scheduler", cluster.address))
        assert code == 0, err
    finally:
        cluster.close()
    computed = int(re.search(r"\((\d+) computed\)", out).group(1))
    assert computed == expected.tiles - done > 0  # only the tiles without a marker
    result = flows.compare.GridResult(path=f"s3://{bucket}/out/scores.zarr", n=0, names=[], pairs=0, tiles=0,
                                      computed_tiles=0, seconds=0, device="cpu")
    for name in ("score", "lag"):
        np.testing.assert_array_equal(result[name], expected[name])
    listed = read_manifest(s3.fs, f"{bucket}/out/scores.zarr")
    assert "zarr.json" in listed and not [p for p in listed if p.startswith("_tiles")]
    assert sorted(s3.fs.ls(f"{bucket}/out", detail=False)) == [f"{bucket}/out/scores.zarr"]  # no staging, no lock
    assert not list(client_dir.iterdir()) or all(p.suffix == ".yaml" for p in client_dir.iterdir())


def test_an_unfinished_s3_output_is_not_read(s3):  # noqa: F811
    bucket = s3.new_bucket()
    path = f"s3://{bucket}/g.zarr"
    result = all_pairs([np.ones((2, 3)), np.arange(6.0).reshape(2, 3)], device="cpu", out=path)
    assert result.score.shape == (2, 2)
    s3.fs.rm_file(f"{bucket}/g.zarr/{SUCCESS}")  # as while a publish copies the files
    with pytest.raises(InputError, match=r"^output.path: s3://.*/g.zarr: not a complete output \(no _SUCCESS\)"):
        result.open()


def test_a_failed_table_run_leaves_the_previous_s3_output(s3, client_elsewhere, tmp_path):  # noqa: F811
    write_wide_ticks(tmp_path / "in", files=2, rows=600, width=1)
    bucket = s3.new_bucket()
    s3.fs.put(str(tmp_path / "in") + "/", f"{bucket}/in/", recursive=True)
    config = table_config(f"s3://{bucket}/in/", f"s3://{bucket}/out", overwrite=True)
    flows.run(config, client=client_elsewhere)
    before = pd.read_parquet(f"s3://{bucket}/out")
    files = sorted(s3.fs.find(f"{bucket}/out"))
    failing = {**config, "steps": [*config["steps"], {"map": {"function": "userfuncs:explode"}}]}
    with pytest.raises(Exception, match="boom"):
        flows.run(failing, client=client_elsewhere)
    assert sorted(s3.fs.find(f"{bucket}/out")) == files
    pd.testing.assert_frame_equal(pd.read_parquet(f"s3://{bucket}/out"), before)
    assert not [p for p in s3.fs.ls(bucket, detail=False) if ".tmp-" in p or p.endswith(".publishing")]
