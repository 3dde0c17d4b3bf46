"""The one publish protocol of both flows (flows/publish.py), on local disk and fsspec's memory://."""

from __future__ import annotations

import os

import fsspec
import pytest

from flows.config import OutputConfig
from flows.publish import SUCCESS, Publication
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


def test_overwrite_moves_the_old_output_aside_through_one_move(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(InputError, match=r"^output.path: .*out already exists; set overwrite: true"):
        Publication.start(OutputConfig(path=str(target)))
    moves = []
    original = Publication.move
    monkeypatch.setattr(Publication, "move", lambda self, a, b: (moves.append((a, b)), original(self, a, b)))
    with Publication.start(OutputConfig(path=str(target), overwrite=True), run_id="new") as pub:
        os.makedirs(pub.tmp_path)
        (tmp_path / "out.tmp-new" / "new.txt").write_text("new")
        pub.publish()
    assert sorted(os.listdir(target)) == [SUCCESS, "new.txt"] and os.listdir(tmp_path) == ["out"]
    assert moves == [(str(target), f"{target}.tmp-new.old"), (f"{target}.tmp-new", str(target))]


def test_memory_filesystem():
    fs = fsspec.filesystem("memory")
    with Publication.start(OutputConfig(path="memory://publish-test/out")) as pub:
        fs.pipe(f"{pub.tmp_path}/part.0", b"x")
        assert pub.tmp_url.startswith("memory://")
        pub.publish()
    assert fs.exists("/publish-test/out/_SUCCESS") and pub.url.startswith("memory://") and pub.url.endswith("/publish-test/out")
    fs.rm("/publish-test", recursive=True)
