"""One publish protocol for every flow's output (see the README, "Outputs are published atomically").

1. A run stages its output next to the target, in ``<target>.tmp-<token>``: the token is a fresh
   run id (:func:`new_run_id`) for a run that starts over each time (the table flow), or a
   fingerprint of the inputs and options for a resumable one (the compare flow), so that a rerun
   finds its own staging and carries on.
2. Nothing is published until the whole output is staged. :meth:`Publication.publish` then moves
   an existing target aside (only with ``overwrite``), moves the staging into place, writes
   ``_SUCCESS`` last, and removes the old output.
3. A failed run removes its staging (:meth:`Publication.discard`), except a resumable one's.

The move is one method, :meth:`Publication.move`: it is a rename on local disks and on file
systems that have one; a store without an atomic rename needs only that method replaced.

Examples
--------
>>> import tempfile, os
>>> from flows.config import OutputConfig
>>> folder = tempfile.mkdtemp()
>>> with Publication.start(OutputConfig(path=f"{folder}/out"), run_id="r1") as pub:
...     os.makedirs(pub.tmp_path)
...     pub.publish()
>>> sorted(os.listdir(folder)), os.listdir(f"{folder}/out")
(['out'], ['_SUCCESS'])
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import fsspec

from flows.config import OutputConfig
from pipelines.errors import InputError

SUCCESS = "_SUCCESS"
STAGING = ".tmp-"  # <target>.tmp-<token>


def new_run_id() -> str:
    """A short unique id for a run's temporary paths."""
    return uuid.uuid4().hex[:12]


def check_target(fs: fsspec.AbstractFileSystem, target: str, overwrite: bool, key: str) -> None:
    """Refuse an existing target unless ``overwrite``."""
    if fs.exists(target) and not overwrite:
        raise InputError(f"{key}: {target} already exists; set overwrite: true to replace it")


@dataclass
class Publication:
    """An output being written: staged next to the target, moved into place on success.

    Use as ``with Publication.start(output) as pub: write(pub.tmp_path); pub.publish()``;
    leaving the block without ``publish()`` (an error, Ctrl-C) removes the staging unless
    ``resumable``.
    """

    target: str
    tmp_path: str
    overwrite: bool
    fs: fsspec.AbstractFileSystem
    new_parents: list[str] = field(default_factory=list)
    published: bool = field(default=False)
    resumable: bool = False

    @classmethod
    def start(
        cls, output: OutputConfig, run_id: str | None = None, suffix: str = "", *, resumable: bool = False
    ) -> Publication:
        """Check the target may be written, and choose the staging path (creates nothing).

        ``run_id``: the staging token (default: a fresh run id); ``resumable``: keep the
        staging when the run fails, for a rerun with the same token.
        """
        fs, _, (target,) = fsspec.get_fs_token_paths(output.path + suffix, storage_options=output.storage_options)
        check_target(fs, target, output.overwrite, "output.path")
        new_parents = []
        parent = os.path.dirname(target.rstrip("/"))
        while parent and parent != os.path.dirname(parent) and not fs.exists(parent):
            new_parents.append(parent)
            parent = os.path.dirname(parent)
        tmp_path = f"{target}{STAGING}{run_id or new_run_id()}"
        return cls(target, tmp_path, output.overwrite, fs, new_parents, resumable=resumable)

    def other_stagings(self) -> list[str]:
        """Staging paths of this target other than this run's (left by other runs)."""
        parent = os.path.dirname(self.target.rstrip("/"))
        prefix = os.path.basename(self.target.rstrip("/")) + STAGING
        if not self.fs.exists(parent):
            return []
        found = [p.rstrip("/") for p in self.fs.ls(parent, detail=False)]
        return sorted(p for p in found if os.path.basename(p).startswith(prefix) and p != self.tmp_path)

    def publish(self, drop: Sequence[str] = ()) -> None:
        """Move the staging into place (old output aside first, removed after); ``drop``: paths
        inside it to remove once moved (bookkeeping of the run); ``_SUCCESS`` last."""
        aside = None
        if self.fs.exists(self.target):
            check_target(self.fs, self.target, self.overwrite, "output.path")
            aside = f"{self.tmp_path}.old"
            self.move(self.target, aside)
        self.move(self.tmp_path, self.target)
        for name in drop:
            if self.fs.exists(f"{self.target}/{name}"):
                self.fs.rm(f"{self.target}/{name}", recursive=True)
        if self.fs.isdir(self.target):
            self.fs.touch(f"{self.target}/{SUCCESS}")
        if aside is not None:
            self.fs.rm(aside, recursive=True)
        self.published = True

    def move(self, source: str, destination: str) -> None:
        """The one move of the protocol: a rename where the file system has one."""
        self.fs.mv(source, destination, recursive=True)

    @property
    def tmp_url(self) -> str:
        """The staging path with its protocol (``memory://``, ``s3://``...), for writers."""
        return self.fs.unstrip_protocol(self.tmp_path)

    @property
    def url(self) -> str:
        """The target as users wrote it: a local path, or a URL with its protocol."""
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        return self.target if "file" in protocols else self.fs.unstrip_protocol(self.target)

    def discard(self) -> None:
        """Remove the staging, if any, and the (still empty) folders made for it."""
        if self.fs.exists(self.tmp_path):
            self.fs.rm(self.tmp_path, recursive=True)
        for folder in self.new_parents:  # deepest first
            if self.fs.exists(folder) and not self.fs.ls(folder):
                self.fs.rmdir(folder)

    def __enter__(self) -> Publication:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published and not self.resumable:
            self.discard()


__all__ = ["SUCCESS", "Publication", "check_target", "new_run_id"]
