"""Where the grid's tiles go: a resumable Zarr store staged by the publish protocol, or memory.

``out`` is a local path or an fsspec URL (``s3://...``, with ``storage_options``): the tasks
write their chunks and markers straight to it from the workers (zarr's fsspec store), so no
shared local disk is needed. The store is staged in ``<out>.tmp-<fingerprint>`` (:mod:`flows.publish`), where the fingerprint
hashes the matrices (names, shapes, float64 values, in order) and the options. It holds

- ``score`` (N x N) and the comparison's other arrays (``lag``, ...), chunks ``(tile, tile)``: a
  tile writes only its own chunk and its mirror's, so concurrent tile writes never share a chunk;
- or, with ``top_k=K``: ``index`` (N x K, int64) and the arrays at those columns, chunks
  ``(tile, K)``, written by one merge task per row block from the tiles' candidates;
- attributes: ``names``, ``n``, the options, the ``fingerprint``, the ``definition``;
- ``_tiles/``: ``fingerprint``, then one marker per finished tile (its candidates file in top-k
  mode), written after the tile's data. Dropped when published.

A rerun with the same inputs and options finds the same staging and computes only the tiles
without a marker; a staging of the same output with another fingerprint is refused
(:class:`InputError`) rather than left behind. The sinks (:class:`ZarrSink`, :class:`MemorySink`)
are small and picklable: they travel with the tile tasks and write from the workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

from flows.config import OutputConfig
from flows.matrices import open_zarr_group
from flows.paths import is_local, refuse_file_parent
from flows.publish import Publication
from pipelines.errors import InputError
from pipelines.grid import Tile, mirror

TILES = "_tiles"
FINGERPRINT = "fingerprint"  # inside _tiles/: zarr warns about foreign objects at the group root
FORMAT = "dask-flows compare grid v1"


def fingerprint(names: Sequence[str], arrays: Sequence[np.ndarray], options: Mapping[str, Any]) -> str:
    """A hash of the matrices (names, shapes, float64 values, in order) and the options.

    >>> a = [np.ones((2, 3))]
    >>> fingerprint(["a"], a, {"tile": 2}) == fingerprint(["a"], a, {"tile": 3})
    False
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"format": FORMAT, "names": list(names), **options}, sort_keys=True).encode())
    for x in arrays:
        x = np.ascontiguousarray(x, dtype=np.float64)
        h.update(np.asarray(x.shape, dtype=np.int64).tobytes())
        h.update(x.data)
    return h.hexdigest()


def output_url(out: Any) -> str:
    """``out`` as the tasks must see it: an fsspec URL as given, a local path made absolute
    (workers run in other working folders)."""
    text = os.fspath(out)
    if "://" in text and not text.startswith("file://"):
        return text.rstrip("/")
    return str(Path(text.removeprefix("file://").rstrip("/") or "/").absolute())


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``path`` whole: a rename into place locally, one put on object stores."""
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    tmp = f"{posixpath.dirname(path)}/.{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def finished_tiles(fs: fsspec.AbstractFileSystem, root: str) -> set[str]:
    """The names of the tiles with a marker in the staged store at ``root`` (a path on ``fs``)."""
    folder = f"{root}/{TILES}"
    fs.invalidate_cache(folder)  # workers wrote there: a listing cached here is out of date
    if not fs.isdir(folder):
        return set()
    names = (posixpath.basename(p.rstrip("/")) for p in fs.ls(folder, detail=False))
    return {n.rsplit(".", 1)[0] for n in names if n.endswith((".done", ".npz"))}


# ----------------------------------------------------------------------------------------------
# sinks: what a tile task does with its arrays
class MemorySink:
    """Results stay in memory: tasks hand their arrays back."""

    def tile(self, tile: Tile, arrays: dict[str, np.ndarray], seconds: float) -> Any:
        return arrays

    def candidates(self, tile: Tile, rows: dict, cols: dict | None) -> Any:
        return rows, cols

    def load(self, source: Any, side: str) -> dict[str, np.ndarray]:
        return source[0] if side == "r" else source[1]

    def merged(self, bounds: tuple[int, int], arrays: dict[str, np.ndarray]) -> Any:
        return arrays


@dataclass(frozen=True)
class ZarrSink:
    """Tasks write into the staged Zarr store at ``root`` (a path or URL) and return the tile's name."""

    root: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def _group(self) -> Any:
        return open_zarr_group(self.root, self.storage_options, mode="r+")

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.root, **self.storage_options)

    def _put_marker(self, name: str, data: bytes) -> None:
        fs, root = self._fs()
        _put(fs, f"{root}/{TILES}/{name}", data)

    def tile(self, tile: Tile, arrays: dict[str, np.ndarray], seconds: float) -> str:
        group = self._group()
        for name, values in arrays.items():
            group[name][tile.i0 : tile.i1, tile.j0 : tile.j1] = values
        if tile.mirrored and not tile.diagonal:
            for name, values in mirror(arrays).items():
                group[name][tile.j0 : tile.j1, tile.i0 : tile.i1] = values
        info = json.dumps({"pairs": tile.pairs, "seconds": round(seconds, 4)})
        self._put_marker(f"{tile.name}.done", info.encode())
        return tile.name

    def candidates(self, tile: Tile, rows: dict, cols: dict | None) -> str:
        found = {f"r{name}": values for name, values in rows.items()}
        found.update({f"c{name}": values for name, values in (cols or {}).items()})
        buffer = io.BytesIO()
        np.savez(buffer, **found)
        self._put_marker(f"{tile.name}.npz", buffer.getvalue())
        return tile.name

    def load(self, source: Any, side: str) -> dict[str, np.ndarray]:
        """A tile's candidates: in memory (a task's result) or from its file (a finished tile)."""
        if not isinstance(source, str):
            return MemorySink().load(source, side)
        fs, root = self._fs()
        with np.load(io.BytesIO(fs.cat_file(f"{root}/{TILES}/{source}.npz")), allow_pickle=False) as data:
            return {key[1:]: data[key] for key in data.files if key[0] == side}

    def merged(self, bounds: tuple[int, int], arrays: dict[str, np.ndarray]) -> tuple[int, int]:
        group = self._group()
        for name, values in arrays.items():
            group[name][bounds[0] : bounds[1]] = values
        return bounds


# ----------------------------------------------------------------------------------------------
# the staged store
@dataclass
class GridStore:
    """The staged output of one grid: its publication, fingerprint and finished tiles."""

    publication: Publication
    fingerprint: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, out: Any, overwrite: bool, fp: str, storage_options: dict[str, Any] | None = None) -> GridStore:
        """Refuse an existing ``out`` (unless ``overwrite``) and another run's staging."""
        options = dict(storage_options or {})
        output = OutputConfig(path=output_url(out), overwrite=overwrite, storage_options=options)
        fs, path = fsspec.core.url_to_fs(output.path, **options)
        refuse_file_parent(fs, path, "output.path", output.path)
        store = cls(Publication.start(output, run_id=fp[:16], resumable=True), fp, options)
        for other in store.publication.other_stagings():
            stamp = f"{other}/{TILES}/{FINGERPRINT}"
            if fs.isfile(stamp):
                raise InputError(
                    f"output.path: {fs.unstrip_protocol(other) if not is_local(fs) else other}: an unfinished run "
                    f"with other inputs or options (fingerprint {fs.cat_file(stamp).decode().strip()}, now {fp}); "
                    "remove it to start over, or choose another output.path"
                )
        return store

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self.publication.fs

    @property
    def root(self) -> str:
        """The staging's path on :attr:`fs`."""
        return self.publication.tmp_path

    @property
    def sink(self) -> ZarrSink:
        return ZarrSink(self.publication.tmp_url, self.storage_options)

    def open(self, attrs: dict[str, Any], arrays: dict[str, tuple], chunks: dict[str, tuple]) -> set[str]:
        """Create or reopen the staged store; the names of its finished tiles."""
        stamp = f"{self.root}/{TILES}/{FINGERPRINT}"
        if not self.fs.isfile(stamp) and (finished_tiles(self.fs, self.root) or self._holds_data()):
            raise InputError(f"output.path: {self.publication.tmp_url}: an unfinished output without a fingerprint; remove it")
        if is_local(self.fs):
            os.makedirs(f"{self.root}/{TILES}", exist_ok=True)
        if not self.fs.isfile(stamp):
            _put(self.fs, stamp, (self.fingerprint + "\n").encode())
        group = open_zarr_group(self.publication.tmp_url, self.storage_options, mode="a")
        group.attrs.update({**attrs, "format": FORMAT, "fingerprint": self.fingerprint})
        for name, (shape, dtype) in arrays.items():
            if name in group:
                existing = group[name]
                if existing.shape == shape and existing.dtype == np.dtype(dtype):
                    continue
                del group[name]
            group.create_array(name, shape=shape, chunks=chunks[name], dtype=dtype, fill_value=0)
        return finished_tiles(self.fs, self.root)

    def _holds_data(self) -> bool:
        if not self.fs.isdir(self.root):
            return False
        return any(posixpath.basename(p.rstrip("/")) != TILES for p in self.fs.ls(self.root, detail=False))

    def publish(self, tiles: Sequence[Tile]) -> str:
        """Check every tile is in, then publish (markers dropped, ``_SUCCESS`` last); the URL."""
        finished = finished_tiles(self.fs, self.root)
        missing = [t.name for t in tiles if t.name not in finished]
        if missing:  # cannot happen unless someone removed markers meanwhile
            raise RuntimeError(f"{self.root}: tiles {missing[:5]} have no marker after the run")
        self.publication.publish(drop=[TILES])
        return self.publication.url


__all__ = ["GridStore", "MemorySink", "ZarrSink", "finished_tiles", "fingerprint", "output_url"]
