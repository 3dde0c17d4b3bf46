"""The one publish protocol of both flows (flows/publish.py), on local disk and fsspec's memory://
(tests/test_s3_publish.py: on a real S3 server)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import fsspec
import pytest

from flows.config import OutputConfig
from flows.publish import (
    LOCK_SECONDS,
    STALE_SECONDS,
    SUCCESS,
    Publication,
    StagingLeftBehind,
    is_published,
    publish_lock,
    read_manifest,
    write_manifest,
)
from pipelines.errors import InputError


def test_staging_is_published_with_success_last(tmp_path):
    target = tmp_path / "deep" / "out"
    with Publication.start(OutputConfig(path=str(target)), run_id="abc") as pub:
        assert pub.tmp_path == f"{target}.tmp-abc" and not os.path.exists(pub.tmp_path)
        os.makedirs(pub.tmp_path)
        (tmp_path / "deep" / "out.tmp-abc" / "part.0").write_text("data")
        (tmp_path / "deep" / "out.tmp-abc" / "_tiles").mkdir()
        pub.publish(drop=["_tiles"])
    assert sorted(os.listdir(target)) == ["_SUCCESS", "part.0"]
    assert os.listdir(tmp_path / "deep") == ["out"]


def test_failure_discards_unless_resumable(tmp_path):
    target = tmp_path / "a" / "out"
    with pytest.raises(RuntimeError), Publication.start(OutputConfig(path=str(target))) as pub:
        os.makedirs(pub.tmp_path)
        raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()  # the staging and the folders made for it are gone
    output = OutputConfig(path=str(tmp_path / "r"))
    with pytest.raises(RuntimeError), Publication.start(output, run_id="fp1", resumable=True) as pub:
        os.makedirs(pub.tmp_path)
        raise RuntimeError("boom")
    assert os.path.isdir(tmp_path / "r.tmp-fp1")  # kept for the rerun with the same token
    again = Publication.start(output, run_id="fp2", resumable=True)
    assert again.other_stagings() == [str(tmp_path / "r.tmp-fp1")]


def test_overwrite_renames_the_old_output_aside_then_the_staging_into_place(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(InputError, match=r"^output.path: .*out already exists; set overwrite: true"):
        Publication.start(OutputConfig(path=str(target)))
    renames = []
    original = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (renames.append((str(a), str(b))), original(a, b)))
    with Publication.start(OutputConfig(path=str(target), overwrite=True), run_id="new") as pub:
        os.makedirs(pub.tmp_path)
        (tmp_path / "out.tmp-new" / "new.txt").write_text("new")
        pub.publish()
    assert sorted(os.listdir(target)) == [SUCCESS, "new.txt"] and os.listdir(tmp_path) == ["out"]
    (aside, first), (staging, second) = renames
    assert (aside, first.rsplit("-", 1)[0]) == (str(target), f"{target}.old")
    assert (staging, second) == (f"{target}.tmp-new", str(target))
    assert read_manifest(pub.fs, str(target)) == {"new.txt": 3}


def staged(output: OutputConfig, rows: int, token: str | None = None) -> Publication:
    """A publication with ``rows`` one-line files staged."""
    pub = Publication.start(output, token)
    pub.fs.makedirs(pub.tmp_path, exist_ok=True)
    for i in range(rows):
        pub.fs.pipe_file(f"{pub.tmp_path}/part.{i}", f"{token}-{i}".encode())
    return pub


@pytest.mark.filterwarnings("ignore::flows.publish.StagingLeftBehind")  # the other runs' stagings
@pytest.mark.parametrize("where", ["local", "memory"])
def test_concurrent_overwrites_leave_exactly_one_complete_result(tmp_path, where):
    """Runs publishing to one output at the same instant: one of them wins whole, never a mix."""
    path = str(tmp_path / "out") if where == "local" else f"memory://publish-{uuid.uuid4().hex}/out"
    output = OutputConfig(path=path, overwrite=True)
    staged(output, 2, "first").publish()
    runs = 4
    pubs = [staged(output, 3 + k, f"run{k}") for k in range(runs)]  # each its own file count
    barrier = threading.Barrier(runs)

    def publish(pub: Publication) -> None:
        barrier.wait()
        pub.publish()

    with ThreadPoolExecutor(runs) as pool:
        list(pool.map(publish, pubs))
    fs, target = pubs[0].fs, pubs[0].target
    files = sorted(p.rsplit("/", 1)[1] for p in fs.find(target))
    winner = {fs.cat_file(f"{target}/{name}").decode().split("-")[0] for name in files if name != SUCCESS}
    assert len(winner) == 1, winner  # all data files from one run
    (run,) = winner
    assert files == [SUCCESS] + [f"part.{i}" for i in range(3 + int(run[3:]))]  # complete, not doubled
    assert read_manifest(fs, target) == {name: len(fs.cat_file(f"{target}/{name}")) for name in files[1:]}
    parent = target.rsplit("/", 1)[0]
    assert [p.rsplit("/", 1)[1] for p in fs.ls(parent, detail=False)] == ["out"]  # no staging, aside, lock


def test_an_output_left_aside_by_a_crash_is_put_back_by_the_next_run(tmp_path):
    target = tmp_path / "out"
    aside = tmp_path / "out.old-dead"  # killed between the two renames: no output, the old one aside
    aside.mkdir()
    (aside / "part.0").write_text("old")
    (aside / SUCCESS).write_text("")
    with pytest.raises(InputError, match="already exists"):  # put back: it is the output again
        Publication.start(OutputConfig(path=str(target)))
    assert sorted(os.listdir(tmp_path)) == ["out"] and (target / "part.0").read_text() == "old"
    (tmp_path / "out.old-other").mkdir()  # an aside beside a complete output is superseded: removed
    Publication.start(OutputConfig(path=str(target), overwrite=True))
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_failed_rename_puts_the_old_output_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    staged(OutputConfig(path=str(target)), 1, "old").publish()
    pub = staged(OutputConfig(path=str(target), overwrite=True), 1, "new")
    original = os.rename

    def failing(a, b):
        if str(a) == pub.tmp_path:
            raise PermissionError(13, "no")
        return original(a, b)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(PermissionError):
        pub.publish()
    assert (target / "part.0").read_text() == "old-0" and (target / SUCCESS).exists()


def test_a_symlinked_output_is_published_through_its_link(tmp_path):
    real = tmp_path / "volume" / "out"
    link = tmp_path / "out"
    staged(OutputConfig(path=str(real)), 1, "a").publish()
    link.symlink_to(real)
    pub = staged(OutputConfig(path=str(link), overwrite=True), 2, "b")
    pub.publish()
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(os.listdir(link)) == [SUCCESS, "part.0", "part.1"] and (real / "part.1").read_text() == "b-1"


def test_stagings_of_dead_runs_are_removed_young_ones_named(tmp_path):
    target = tmp_path / "out"
    for name, age in (("old", STALE_SECONDS + 60), ("young", 10)):
        staging = tmp_path / f"out.tmp-{name}"
        staging.mkdir()
        (staging / "part.0").write_text("x")
        when = time.time() - age
        for p in (staging / "part.0", staging):
            os.utime(p, (when, when))
    with pytest.warns(StagingLeftBehind, match=r"^output.path: .*out.tmp-young: left by an earlier run"):
        pub = Publication.start(OutputConfig(path=str(target)))
    assert sorted(os.listdir(tmp_path)) == ["out.tmp-young"] and pub.other_stagings() == [f"{target}.tmp-young"]


def test_a_dead_publishers_lock_is_broken_and_its_publish_finished():
    """An object-store publish killed mid-copy: the target has no _SUCCESS, the lock is stale and
    the staging complete; the next publisher rolls that staging forward, then publishes its own."""
    fs = fsspec.filesystem("memory")
    root = f"/publish-{uuid.uuid4().hex}"
    output = OutputConfig(path=f"memory://{root}/out", overwrite=True)
    dead = staged(output, 2, "dead")
    write_manifest(fs, dead.tmp_path, "dead")
    fs.pipe_file(f"{root}/out/part.0", b"dead-0")  # half copied
    fs.pipe_file(f"{root}/out.publishing", json.dumps({"staging": dead.tmp_path, "time": time.time() - LOCK_SECONDS - 1}).encode())
    assert not is_published(fs, f"{root}/out")
    with publish_lock(fs, f"{root}/out", "mine", wait=5):
        assert read_manifest(fs, f"{root}/out") == {"part.0": 6, "part.1": 6} and not fs.exists(dead.tmp_path)
    fresh = json.dumps({"staging": "x", "time": time.time()}).encode()
    fs.pipe_file(f"{root}/out.publishing", fresh)  # a live publisher's lock is waited for, then named
    with pytest.raises(InputError, match=r"^output.path: memory://.*/out: another run is publishing it"):
        with publish_lock(fs, f"{root}/out", "mine", wait=0.3):
            pass
    fs.rm(root, recursive=True)


def test_memory_filesystem():
    fs = fsspec.filesystem("memory")
    with Publication.start(OutputConfig(path="memory://publish-test/out")) as pub:
        fs.pipe(f"{pub.tmp_path}/part.0", b"x")
        assert pub.tmp_url.startswith("memory://")
        pub.publish()
    assert fs.exists("/publish-test/out/_SUCCESS") and pub.url.startswith("memory://") and pub.url.endswith("/publish-test/out")
    fs.rm("/publish-test", recursive=True)
