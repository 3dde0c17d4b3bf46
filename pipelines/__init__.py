"""Reusable, lazy Dask steps: Dask collection in, lazy Dask collection out. No I/O, no CLI.

Each step lives in a module of its own:

- :mod:`pipelines.lookahead` -- future-aware features (rows or time horizon, per key)
- :mod:`pipelines.dedup` -- consecutive-duplicate removal across partitions
- :mod:`pipelines.summary` -- mergeable moments, tree-reduced
- :mod:`pipelines.compare` -- the matrix comparison kernel (NumPy or CuPy), and its windowed form
  for one pair (``window_table``, ``compare_window``)
- :mod:`pipelines.window` -- the batched windowed kernel (NumPy or CuPy)
- :mod:`pipelines.grid` -- the all-against-all grid: its plan (tiles) and tile kernels, pure

``pipelines`` never imports ``flows``, ``zarr``, ``fsspec`` or ``ctypes``, and writes no files.

Dask config (defaults registered here, set with ``dask.config.set`` or ``DASK_*`` variables):

- ``dask-flows.scan.hold-partitions`` (default ``false``): the scans' memory policy
  (:mod:`pipelines.partitions`): ``false`` recomputes a copy of each partition for its summary
  (memory bounded), ``true`` computes each partition once and may hold them all.
"""

import dask

from pipelines.errors import InputError

dask.config.update_defaults({"dask-flows": {"scan": {"hold-partitions": False}}})

__all__ = ["InputError"]
