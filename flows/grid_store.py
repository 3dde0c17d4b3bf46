"""Where the grid's tiles go: a resumable Zarr store staged by the publish protocol, or memory.

The store is staged in ``<out>.tmp-<fingerprint>`` (:mod:`flows.publish`), where the fingerprint
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
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flows.config import OutputConfig
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


def local_path(out: Any) -> Path:
    """``out`` as an absolute local path: tasks write to it from workers with other working folders."""
    text = os.fspath(out)
    if "://" in text:
        raise InputError(f"output.path: {text}: only local paths are supported for the compare grid")
    return Path(text.rstrip("/") or "/").absolute()


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    os.replace(tmp, path)


def finished_tiles(root: Path) -> set[str]:
    """The names of the tiles with a marker in the staged store ``root``."""
    folder = root / TILES
    if not folder.is_dir():
        return set()
    return {p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.suffix in (".done", ".npz")}


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
    """Tasks write into the staged Zarr store at ``root`` and return the tile's name."""

    root: str

    def _group(self) -> Any:
        import zarr  # noqa: PLC0415

        return zarr.open_group(self.root, mode="r+")

    def tile(self, tile: Tile, arrays: dict[str, np.ndarray], seconds: float) -> str:
        group = self._group()
        for name, values in arrays.items():
            group[name][tile.i0 : tile.i1, tile.j0 : tile.j1] = values
        if tile.mirrored and not tile.diagonal:
            for name, values in mirror(arrays).items():
                group[name][tile.j0 : tile.j1, tile.i0 : tile.i1] = values
        info = json.dumps({"pairs": tile.pairs, "seconds": round(seconds, 4)})
        _atomic_write(Path(self.root) / TILES / f"{tile.name}.done", lambda p: p.write_text(info))
        return tile.name

    def candidates(self, tile: Tile, rows: dict, cols: dict | None) -> str:
        found = {f"r{name}": values for name, values in rows.items()}
        found.update({f"c{name}": values for name, values in (cols or {}).items()})

        def save(path: Path) -> None:
            with open(path, "wb") as handle:
                np.savez(handle, **found)

        _atomic_write(Path(self.root) / TILES / f"{tile.name}.npz", save)
        return tile.name

    def load(self, source: Any, side: str) -> dict[str, np.ndarray]:
        """A tile's candidates: in memory (a task's result) or from its file (a finished tile)."""
        if not isinstance(source, str):
            return MemorySink().load(source, side)
        with np.load(Path(self.root) / TILES / f"{source}.npz", allow_pickle=False) as data:
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

    @classmethod
    def start(cls, out: Any, overwrite: bool, fp: str) -> GridStore:
        """Refuse an existing ``out`` (unless ``overwrite``) and another run's staging."""
        final = local_path(out)
        output = OutputConfig(path=str(final), overwrite=overwrite)
        store = cls(Publication.start(output, run_id=fp[:16], resumable=True), fp)
        for other in store.publication.other_stagings():
            stamp = Path(other) / TILES / FINGERPRINT
            if stamp.exists():
                raise InputError(
                    f"output.path: {other}: an unfinished run with other inputs or options (fingerprint "
                    f"{stamp.read_text().strip()}, now {fp}); remove it to start over, or choose another "
                    "output.path"
                )
        return store

    @property
    def root(self) -> Path:
        return Path(self.publication.tmp_path)

    @property
    def sink(self) -> ZarrSink:
        return ZarrSink(str(self.root))

    def open(self, attrs: dict[str, Any], arrays: dict[str, tuple], chunks: dict[str, tuple]) -> set[str]:
        """Create or reopen the staged store; the names of its finished tiles."""
        import zarr  # noqa: PLC0415

        stamp = self.root / TILES / FINGERPRINT
        if not stamp.exists() and (finished_tiles(self.root) or self._holds_data()):
            raise InputError(f"output.path: {self.root}: an unfinished output without a fingerprint; remove it")
        (self.root / TILES).mkdir(parents=True, exist_ok=True)
        if not stamp.exists():
            _atomic_write(stamp, lambda p: p.write_text(self.fingerprint + "\n"))
        group = zarr.open_group(str(self.root), mode="a")
        group.attrs.update({**attrs, "format": FORMAT, "fingerprint": self.fingerprint})
        for name, (shape, dtype) in arrays.items():
            if name in group:
                existing = group[name]
                if existing.shape == shape and existing.dtype == np.dtype(dtype):
                    continue
                del group[name]
            group.create_array(name, shape=shape, chunks=chunks[name], dtype=dtype, fill_value=0)
        return finished_tiles(self.root)

    def _holds_data(self) -> bool:
        return self.root.is_dir() and any(p.name != TILES for p in self.root.iterdir())

    def publish(self, tiles: Sequence[Tile]) -> str:
        """Check every tile is in, then publish (markers dropped, ``_SUCCESS`` last)."""
        finished = finished_tiles(self.root)
        missing = [t.name for t in tiles if t.name not in finished]
        if missing:  # cannot happen unless someone removed markers meanwhile
            raise RuntimeError(f"{self.root}: tiles {missing[:5]} have no marker after the run")
        self.publication.publish(drop=[TILES])
        return self.publication.target


__all__ = ["GridStore", "MemorySink", "ZarrSink", "finished_tiles", "fingerprint", "local_path"]
