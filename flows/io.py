"""Atomic Parquet sinks (table sources are in :mod:`flows.sources`, the summary state in :mod:`flows.state`).

Sinks never leave half-written output: they write next to the target into
``<target>.tmp-<run id>`` and only :meth:`Publication.publish` moves it into place (an existing
target is renamed aside first and removed only after; ``_SUCCESS`` is written last).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import fsspec

from flows.config import OutputConfig
from pipelines.errors import InputError

SUCCESS = "_SUCCESS"


# ----------------------------------------------------------------------------------------------
# sinks
def new_run_id() -> str:
    """A short unique id for a run's temporary paths."""
    return uuid.uuid4().hex[:12]


@dataclass
class Publication:
    """An output being written: a temp path next to the target, moved into place on success.

    Use as ``with Publication.start(output) as pub: write(pub.tmp_path); pub.publish()``;
    leaving the block without ``publish()`` (an error, Ctrl-C) removes the temp path.
    """

    target: str
    tmp_path: str
    overwrite: bool
    fs: fsspec.AbstractFileSystem
    new_parents: list[str] = field(default_factory=list)
    published: bool = field(default=False)

    @classmethod
    def start(cls, output: OutputConfig, run_id: str | None = None, suffix: str = "") -> Publication:
        """Check the target may be written, and choose the temp path (creates nothing)."""
        fs, _, (target,) = fsspec.get_fs_token_paths(output.path + suffix, storage_options=output.storage_options)
        check_target(fs, target, output.overwrite, "output.path")
        new_parents = []
        parent = os.path.dirname(target.rstrip("/"))
        while parent and parent != os.path.dirname(parent) and not fs.exists(parent):
            new_parents.append(parent)
            parent = os.path.dirname(parent)
        return cls(target, f"{target}.tmp-{run_id or new_run_id()}", output.overwrite, fs, new_parents)

    def publish(self) -> None:
        """Move the temp output into place (old output aside first, removed after), then _SUCCESS."""
        aside = None
        if self.fs.exists(self.target):
            check_target(self.fs, self.target, self.overwrite, "output.path")
            aside = f"{self.tmp_path}.old"
            self.fs.mv(self.target, aside, recursive=True)
        self.fs.mv(self.tmp_path, self.target, recursive=True)
        if self.fs.isdir(self.target):
            self.fs.touch(f"{self.target}/{SUCCESS}")
        if aside is not None:
            self.fs.rm(aside, recursive=True)
        self.published = True

    @property
    def tmp_url(self) -> str:
        """The temp path with its protocol (``memory://``, ``s3://``...), for writers."""
        return self.fs.unstrip_protocol(self.tmp_path)

    @property
    def url(self) -> str:
        """The target as users wrote it: a local path, or a URL with its protocol."""
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        return self.target if "file" in protocols else self.fs.unstrip_protocol(self.target)

    def discard(self) -> None:
        """Remove the temp output, if any, and the (still empty) folders made for it."""
        if self.fs.exists(self.tmp_path):
            self.fs.rm(self.tmp_path, recursive=True)
        for folder in self.new_parents:  # deepest first
            if self.fs.exists(folder) and not self.fs.ls(folder):
                self.fs.rmdir(folder)

    def __enter__(self) -> Publication:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published:
            self.discard()


def check_target(fs: fsspec.AbstractFileSystem, target: str, overwrite: bool, key: str) -> None:
    """Refuse an existing target unless ``overwrite``."""
    if fs.exists(target) and not overwrite:
        raise InputError(f"{key}: {target} already exists; set overwrite: true to replace it")


def parquet_writer(df: dd.DataFrame, path: str, storage_options: dict[str, Any] | None = None) -> Any:
    """A lazy Parquet write of ``df`` into ``path`` (a Dask object; nothing is written yet)."""
    return df.to_parquet(
        path, compute=False, write_index=False, storage_options=storage_options or None,
        write_metadata_file=False,
    )


__all__ = [
    "Publication", "check_target", "new_run_id", "parquet_writer",
]
