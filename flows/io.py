"""The Parquet sink (table sources are in :mod:`flows.sources`, the summary state in :mod:`flows.state`).

Sinks never leave half-written output: the Parquet writer writes into a staging path that
:class:`flows.publish.Publication` moves into place (the publish protocol of every flow).
"""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd


def parquet_writer(df: dd.DataFrame, path: str, storage_options: dict[str, Any] | None = None) -> Any:
    """A lazy Parquet write of ``df`` into ``path`` (a Dask object; nothing is written yet)."""
    return df.to_parquet(
        path, compute=False, write_index=False, storage_options=storage_options or None,
        write_metadata_file=False,
    )


__all__ = ["parquet_writer"]
