"""The summary state on storage: a folder of batch files that merge on read, so no lock is needed.

``summary.state`` names a folder: a local path or an fsspec URL (``memory://``, ``s3://``...,
with ``summary.storage_options``). Each run that merges a batch adds **one** file to it,
``<fingerprint>.json``: the state of that batch alone (the :meth:`SummaryState.to_dict` form),
created exclusively and written last, after the run's output is published; it is the batch's
commit record. No run rewrites another's file, so two runs merging different inputs at the same
time both end up in the state. Reading lists the folder and merges every batch file (hidden
names, starting with ``.`` or ``_``, are skipped). The same input twice is refused: when the run is
planned (its fingerprint is among the merged sources) and, for two runs of the same input at the
same time, when the second commits (its batch file exists; local folders and S3 create it
atomically). A single-file state written by the previous release is read as one batch and turned
into a folder by the first run that commits. See ``docs/semantics.md``, "Summary state".

Examples
--------
>>> import pandas as pd
>>> from pipelines.summary_state import SummaryState
>>> store = StateStore.open("memory://state-doctest/state", {})
>>> batch = SummaryState.from_frame(pd.DataFrame({"x": [1.0, 2.0]})).with_source("a", "f1")
>>> store.commit(batch, "f1")
'memory://state-doctest/state/f1.json'
>>> store.read().to_frame().loc["x", "count"]
np.int64(2)
>>> store.commit(batch, "f1")
Traceback (most recent call last):
...
pipelines.errors.InputError: summary.state: memory://state-doctest/state: input 'a' (fingerprint f1) is already merged into the summary state (memory://state-doctest/state/f1.json)
>>> store.fs.rm("/state-doctest", recursive=True)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import time
from dataclasses import dataclass
from typing import Any

import fsspec

from flows.publish import new_run_id
from flows.paths import is_local, refuse_file_parent
from pipelines.errors import InputError, first_line
from pipelines.summary_state import SummaryState

LEGACY_ASIDE = ".legacy"  # <state>.legacy: a single-file state while it becomes a folder
_RACES = (errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY)


@dataclass(frozen=True)
class StateStore:
    """The folder of batch files at ``summary.state`` (``shown`` as the user wrote it)."""

    shown: str
    fs: fsspec.AbstractFileSystem
    path: str
    key: str = "summary.state"

    @classmethod
    def open(cls, url: str, storage_options: dict[str, Any], key: str = "summary.state") -> StateStore:
        """The state at ``url``; refuses a path under a file (``afile/state``), naming ``key``."""
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        path = path.rstrip("/")
        refuse_file_parent(fs, path, key, url)
        return cls(url, fs, path, key)

    def files(self) -> list[str]:
        """The batch files to merge, sorted by name (a single-file state: itself)."""
        if self.fs.isdir(self.path):
            names = self.fs.ls(self.path, detail=False)
            return sorted(
                n for n in names if n.endswith(".json") and not posixpath.basename(n).startswith((".", "_"))
            )
        for single in (self.path, self.path + LEGACY_ASIDE):  # the aside one: a conversion under way
            if self.fs.isfile(single):
                return [single]
        return []

    def read(self) -> SummaryState | None:
        """Every batch merged (in a tree), or None when there is none; errors name the file."""
        states = [self._read_batch(name) for name in self.files()]
        if not states:
            return None
        try:
            return SummaryState.merge_all(states)
        except InputError as error:
            raise InputError(f"{self.key}: {self.shown}: {error}") from None

    def commit(self, batch: SummaryState, fingerprint: str) -> str:
        """Add ``batch`` (this run's state, recording its one input) as ``<fingerprint>.json``.

        Returns the batch file's URL. Raises the "already merged" :class:`InputError` when that
        file exists (a concurrent run of the same input committed first).
        """
        self._make_folder()
        target = f"{self.path}/{fingerprint}.json"
        data = json.dumps(batch.to_dict(), indent=1, allow_nan=False).encode()
        try:
            self._create(target, data)
        except FileExistsError:
            source = batch.sources[-1] if batch.sources else {"path": "?"}
            raise InputError(
                f"{self.key}: {self.shown}: input {source['path']!r} (fingerprint {fingerprint}) is already "
                f"merged into the summary state ({self._shown(target)})"
            ) from None
        return self._shown(target)

    # ------------------------------------------------------------------------------------------
    def _shown(self, path: str) -> str:
        return self.shown.rstrip("/") + path[len(self.path):]

    def _read_batch(self, path: str) -> SummaryState:
        shown = self._shown(path)
        try:
            with self.fs.open(path, "rb") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as error:
            raise InputError(f"{self.key}: {shown}: not a readable JSON state ({first_line(error)})") from None
        try:
            return SummaryState.from_dict(data)
        except InputError as error:
            raise InputError(f"{self.key}: {shown}: {error}") from None

    def _create(self, target: str, data: bytes) -> None:
        """Write ``target`` whole, failing with FileExistsError if it exists (never replacing it)."""
        if not is_local(self.fs):
            self.fs.pipe_file(target, data, mode="create")  # S3: a conditional put (If-None-Match)
            return
        tmp = f"{posixpath.dirname(target)}/.{posixpath.basename(target)}.tmp-{new_run_id()}"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, target)  # atomic, and refuses an existing target
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _make_folder(self) -> None:
        """Make sure the state is a folder, turning a single-file state into one (concurrency-safe).

        The single file is moved to ``<state>.legacy`` (read in its place meanwhile), copied into
        a new folder as ``legacy-<digest>.json``, which then appears at ``<state>`` in one rename
        (local) or one put (object stores), and removed: a reader sees it exactly once throughout.
        """
        aside = self.path + LEGACY_ASIDE
        for _ in range(100):
            try:
                if self.fs.isdir(self.path):
                    return
                if self.fs.isfile(self.path):
                    self.fs.mv(self.path, aside)
                if not self.fs.isfile(aside):
                    self.fs.makedirs(self.path, exist_ok=True)
                    return
                self._install_legacy(aside)
            except OSError as error:  # another run converts at the same time: look again
                if not isinstance(error, FileNotFoundError | FileExistsError) and error.errno not in _RACES:
                    raise
                time.sleep(0.02)
        raise InputError(f"{self.key}: {self.shown}: could not turn the single-file state into a folder")

    def _install_legacy(self, aside: str) -> None:
        data = self.fs.cat_file(aside)
        name = f"legacy-{hashlib.sha256(data).hexdigest()[:32]}.json"
        if is_local(self.fs):
            tmp = f"{self.path}.tmp-{new_run_id()}"
            os.makedirs(tmp)
            try:
                with open(f"{tmp}/{name}", "wb") as handle:
                    handle.write(data)
                os.rename(tmp, self.path)  # fails if another run made the folder first
            finally:
                if os.path.exists(tmp):
                    self.fs.rm(tmp, recursive=True)
        else:
            self.fs.pipe_file(f"{self.path}/{name}", data)  # the same bytes whoever writes them
        try:
            self.fs.rm_file(aside)
        except FileNotFoundError:
            pass
