"""One publish protocol for every flow's output, on local disks and object stores alike.

The README ("Outputs are published atomically") and ``docs/semantics.md`` ("Publishing") describe
it for users; in short:

1. A run stages its output next to the target, in ``<target>.tmp-<token>``: the token is a fresh
   run id (:func:`new_run_id`) for a run that starts over each time (the table flow), or a
   fingerprint of the inputs and options for a resumable one (the compare flow), so that a rerun
   finds its own staging and carries on.
2. When the whole output is staged, :meth:`Publication.publish` drops the run's bookkeeping from
   the staging and writes ``_SUCCESS`` into it last: a manifest (JSON) of every file with its
   size. A target is complete exactly when its ``_SUCCESS`` exists (:func:`is_published`).
3. Then the staging goes into place:

   - **local disks** (atomic rename): an existing target (only with ``overwrite``) is renamed
     aside to ``<target>.old-<id>``, the staging renamed onto the target path, the aside removed.
     ``os.rename`` of a folder fails if another run re-created the target meanwhile -- it never
     nests one output in another -- and then the publish simply repeats. A crash between the two
     renames leaves ``<target>.old-<id>``: the next run to that target puts it back (or removes it
     once a newer output is in place). A symlinked target is published through its link.
   - **object stores** (no rename): under a lock object ``<target>.publishing`` (a conditional
     put, so one publisher at a time), the old ``_SUCCESS`` is deleted first, the staged files are
     copied into the target server-side, files of the old output that the new one lacks are
     deleted, and the new ``_SUCCESS`` is written last. A run killed while copying leaves the
     target without ``_SUCCESS`` (incomplete for every reader that checks it) and its complete
     staging; the next publisher to that target, finding the dead run's lock, rolls that staging
     forward first.

4. A failed run removes its staging (:meth:`Publication.discard`), except a resumable one's. A
   table-flow staging left by a killed run is removed by the next run once it is older than
   :data:`STALE_SECONDS`; a younger one (perhaps a run still going) is named in a warning.

Examples
--------
>>> import tempfile, os
>>> from flows.config import OutputConfig
>>> folder = tempfile.mkdtemp()
>>> with Publication.start(OutputConfig(path=f"{folder}/out"), run_id="r1") as pub:
...     os.makedirs(pub.tmp_path)
...     pub.publish()
>>> sorted(os.listdir(folder)), os.listdir(f"{folder}/out"), is_published(pub.fs, pub.target)
(['out'], ['_SUCCESS'], True)
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import fsspec

from flows.config import OutputConfig
from flows.paths import is_local
from pipelines.errors import InputError

SUCCESS = "_SUCCESS"
STAGING = ".tmp-"  # <target>.tmp-<token>: a run's output while it is written
ASIDE = ".old-"  # <target>.old-<id>: the previous output, for an instant (local disks)
LOCK = ".publishing"  # <target>.publishing: the one publisher of an object-store target
STALE_SECONDS = 6 * 3600  # a table-flow staging this old is a dead run's: removed
LOCK_SECONDS = 300.0  # a publish lock this old is a dead run's: broken (and its publish finished)
FORMAT = "dask-flows publish v1"


class StagingLeftBehind(UserWarning):
    """A staging of the same output from another run, not old enough to be removed."""


def new_run_id() -> str:
    """A short unique id for a run's temporary paths."""
    return uuid.uuid4().hex[:12]


def check_target(fs: fsspec.AbstractFileSystem, target: str, overwrite: bool, key: str) -> None:
    """Refuse an existing target unless ``overwrite``."""
    if fs.exists(target) and not overwrite:
        raise InputError(f"{key}: {target} already exists; set overwrite: true to replace it")


def is_published(fs: fsspec.AbstractFileSystem, target: str) -> bool:
    """Whether ``target`` is a complete output: its ``_SUCCESS`` exists (written last)."""
    return fs.isfile(f"{target.rstrip('/')}/{SUCCESS}")


def _relative_files(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, int]:
    """``{path relative to root: size}`` of every file under ``root``."""
    root = root.rstrip("/")
    fs.invalidate_cache(root)  # other processes wrote there: a listing cached here is out of date
    found = fs.find(root, detail=True)
    return {path[len(root) + 1 :]: int(info.get("size") or 0) for path, info in found.items()
            if info.get("type") != "directory" and path != root}


def _newest_change(fs: fsspec.AbstractFileSystem, root: str) -> float | None:
    """The newest modification time (epoch seconds) of ``root`` or a file under it, if known."""
    times = []
    for path in [root, *fs.find(root)]:
        try:
            modified = fs.modified(path)
        except (OSError, NotImplementedError, ValueError):
            continue
        times.append(modified.timestamp() if hasattr(modified, "timestamp") else float(modified))
    return max(times) if times else None


@dataclass
class Publication:
    """An output being written: staged next to the target, put into place on success.

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
        staging when the run fails, for a rerun with the same token. Puts back an output that a
        crashed local publish left aside; sweeps (or names) stagings of dead table runs.
        """
        fs, _, (target,) = fsspec.get_fs_token_paths(output.path + suffix, storage_options=output.storage_options)
        target = target.rstrip("/") or target
        if is_local(fs) and os.path.islink(target):
            target = os.path.realpath(target)  # publish through the link: it keeps pointing at the output
        if is_local(fs):
            _restore_aside(target)
        check_target(fs, target, output.overwrite, "output.path")
        new_parents = []
        parent = posixpath.dirname(target)
        while parent and parent != posixpath.dirname(parent) and not fs.exists(parent):
            new_parents.append(parent)
            parent = posixpath.dirname(parent)
        tmp_path = f"{target}{STAGING}{run_id or new_run_id()}"
        publication = cls(target, tmp_path, output.overwrite, fs, new_parents, resumable=resumable)
        if not resumable:
            publication.sweep_stagings()
        return publication

    def other_stagings(self) -> list[str]:
        """Staging paths of this target other than this run's (left by other runs)."""
        return [p for p in self._siblings(STAGING) if p != self.tmp_path]

    def _siblings(self, infix: str) -> list[str]:
        parent = posixpath.dirname(self.target)
        prefix = posixpath.basename(self.target) + infix
        self.fs.invalidate_cache(parent)
        if not self.fs.exists(parent):
            return []
        found = [p.rstrip("/") for p in self.fs.ls(parent, detail=False)]
        return sorted(p for p in found if posixpath.basename(p).startswith(prefix))

    def sweep_stagings(self, now: float | None = None) -> list[str]:
        """Remove other runs' stagings older than :data:`STALE_SECONDS`; warn naming younger ones.
        Returns the ones named (left in place)."""
        now = time.time() if now is None else now
        named = []
        for other in self.other_stagings():
            changed = _newest_change(self.fs, other)
            if changed is not None and now - changed > STALE_SECONDS:
                self.fs.rm(other, recursive=True)
                continue
            named.append(other)
            warnings.warn(
                f"output.path: {other}: left by an earlier run (or one still running); remove it if no run "
                "is writing it", StagingLeftBehind, stacklevel=2,
            )
        return named

    def publish(self, drop: Sequence[str] = ()) -> None:
        """Put the staging into place (see the module docstring). ``drop``: paths inside the
        staging to leave out (the run's bookkeeping); ``_SUCCESS`` is written last."""
        for name in drop:
            if self.fs.exists(f"{self.tmp_path}/{name}"):
                self.fs.rm(f"{self.tmp_path}/{name}", recursive=True)
        if self.fs.isdir(self.tmp_path):
            write_manifest(self.fs, self.tmp_path, new_run_id())
        if is_local(self.fs):
            self._publish_by_rename()
        else:
            with publish_lock(self.fs, self.target, self.tmp_path):
                check_target(self.fs, self.target, self.overwrite, "output.path")
                copy_into_place(self.fs, self.tmp_path, self.target)
            self.fs.rm(self.tmp_path, recursive=True)
        self.published = True

    def _publish_by_rename(self, attempts: int = 50) -> None:
        """Rename the old target aside and the staging onto it; repeat if another run got there
        first (the rename fails rather than nest)."""
        for _ in range(attempts):
            aside = None
            if os.path.lexists(self.target):
                check_target(self.fs, self.target, self.overwrite, "output.path")
                aside = f"{self.target}{ASIDE}{new_run_id()}"
                try:
                    os.rename(self.target, aside)
                except FileNotFoundError:  # another run moved it meanwhile
                    continue
            try:
                os.rename(self.tmp_path, self.target)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                    if aside is not None and not os.path.lexists(self.target):
                        os.rename(aside, self.target)  # put the old output back
                    raise
                # another run published meanwhile: ours replaces it on the next try
            if aside is not None:
                self.fs.rm(aside, recursive=True)
            if not os.path.lexists(self.tmp_path):
                return
        raise OSError(f"output.path: {self.target}: other runs kept publishing to it; gave up after {attempts} tries")

    @property
    def tmp_url(self) -> str:
        """The staging path with its protocol (``memory://``, ``s3://``...), for writers."""
        return self.tmp_path if is_local(self.fs) else self.fs.unstrip_protocol(self.tmp_path)

    @property
    def url(self) -> str:
        """The target as users wrote it: a local path, or a URL with its protocol."""
        return self.target if is_local(self.fs) else self.fs.unstrip_protocol(self.target)

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


def _restore_aside(target: str) -> None:
    """Local disks: an output a crashed publish left at ``<target>.old-<id>`` goes back in place
    if the target is missing (the newest complete one); the others are removed."""
    parent, name = os.path.split(target)
    if not os.path.isdir(parent or "."):
        return
    asides = [os.path.join(parent, n) for n in os.listdir(parent or ".") if n.startswith(name + ASIDE)]
    asides.sort(key=lambda p: os.stat(p).st_mtime if os.path.lexists(p) else 0, reverse=True)
    for aside in asides:
        try:
            if not os.path.lexists(target) and os.path.isfile(os.path.join(aside, SUCCESS)):
                os.rename(aside, target)
            else:
                fsspec.filesystem("file").rm(aside, recursive=True)
        except OSError:  # another run restored or removed it meanwhile
            continue


def write_manifest(fs: fsspec.AbstractFileSystem, root: str, run: str) -> dict[str, int]:
    """Write ``<root>/_SUCCESS``: ``{"format", "run", "files": {relative path: size}}``; the files."""
    files = {p: s for p, s in _relative_files(fs, root).items() if p != SUCCESS} if fs.exists(root) else {}
    body = json.dumps({"format": FORMAT, "run": run, "files": files}, sort_keys=True, indent=0).encode()
    fs.pipe_file(f"{root}/{SUCCESS}", body)
    return files


def read_manifest(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, int] | None:
    """The files a ``_SUCCESS`` manifest lists (``None``: no ``_SUCCESS``; ``{}``: an empty
    ``_SUCCESS`` of an earlier release, which lists nothing)."""
    try:
        body = fs.cat_file(f"{root.rstrip('/')}/{SUCCESS}")
    except FileNotFoundError:
        return None
    try:
        return dict(json.loads(body)["files"]) if body.strip() else {}
    except (ValueError, KeyError, TypeError):
        return {}


def copy_into_place(fs: fsspec.AbstractFileSystem, staging: str, target: str) -> None:
    """Object stores: replace ``target`` by ``staging`` (which holds its ``_SUCCESS``): the old
    ``_SUCCESS`` deleted first, the staged files copied (server-side), the old output's other
    files deleted, the new ``_SUCCESS`` copied last. Run it under :func:`publish_lock`."""
    new = _relative_files(fs, staging)
    if fs.exists(f"{target}/{SUCCESS}"):
        fs.rm_file(f"{target}/{SUCCESS}")
    for rel in sorted(new):
        if rel != SUCCESS:
            fs.copy(f"{staging}/{rel}", f"{target}/{rel}")
    old = _relative_files(fs, target) if fs.exists(target) else {}
    stale = [f"{target}/{rel}" for rel in old if rel not in new]
    if stale:
        fs.rm(stale)
    fs.copy(f"{staging}/{SUCCESS}", f"{target}/{SUCCESS}")


@contextmanager
def publish_lock(
    fs: fsspec.AbstractFileSystem, target: str, staging: str, wait: float = LOCK_SECONDS + 30
) -> Iterator[None]:
    """Hold ``<target>.publishing`` (a conditional put: one holder at a time) while publishing.

    A lock older than :data:`LOCK_SECONDS` is a dead run's: it is broken, and if that run's
    staging is complete and the target is not, its publish is finished first (rolled forward).
    """
    lock = target + LOCK
    body = json.dumps({"staging": staging, "time": time.time()}).encode()
    deadline = time.monotonic() + wait
    while True:
        try:
            fs.pipe_file(lock, body, mode="create")
            break
        except FileExistsError:
            _break_dead_lock(fs, lock, target)
            if time.monotonic() > deadline:
                raise InputError(
                    f"output.path: {fs.unstrip_protocol(target)}: another run is publishing it ({fs.unstrip_protocol(lock)}); "
                    "remove that lock if no run is"
                ) from None
            time.sleep(0.1)
    try:
        yield
    finally:
        fs.rm_file(lock)


def _break_dead_lock(fs: fsspec.AbstractFileSystem, lock: str, target: str) -> None:
    """Remove a lock older than :data:`LOCK_SECONDS`, finishing the dead run's publish first."""
    try:
        held = json.loads(fs.cat_file(lock))
    except (FileNotFoundError, ValueError):
        return
    if time.time() - float(held.get("time", 0)) < LOCK_SECONDS:
        return
    staging = held.get("staging", "")
    if staging and is_published(fs, staging) and not is_published(fs, target):
        copy_into_place(fs, staging, target)
        fs.rm(staging, recursive=True)
    try:
        fs.rm_file(lock)
    except FileNotFoundError:
        pass


__all__ = [
    "SUCCESS", "Publication", "StagingLeftBehind", "check_target", "copy_into_place", "is_published",
    "new_run_id", "publish_lock", "read_manifest", "write_manifest",
]
