"""The Parquet sink (table sources are in :mod:`flows.sources`, the summary state in :mod:`flows.state`).

Sinks never leave half-written output: the Parquet writer writes into a staging path that
:class:`flows.publish.Publication` moves into place (the publish protocol of every flow).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import dask.dataframe as dd

from pipelines.errors import InputError


def parquet_options(
    compression: str = "snappy", dictionary: bool | Sequence[str] = True,
    columns: Sequence[Hashable] = (),
) -> dict[str, Any]:
    """The keyword arguments of ``to_parquet`` (and so of pyarrow's writer) for the output
    settings ``output.compression`` and ``output.dictionary``, checked against ``columns``.

    Examples
    --------
    >>> parquet_options("zstd", ["symbol"], columns=["ts", "symbol", "price"])
    {'compression': 'zstd', 'use_dictionary': ['symbol']}
    >>> parquet_options("none", False)
    {'compression': None, 'use_dictionary': False}
    >>> parquet_options(dictionary=["sym"], columns=["symbol"])
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: output.dictionary: unknown column 'sym' (the output's columns: symbol)
    """
    if not isinstance(dictionary, bool):
        known = [str(c) for c in columns]
        for name in dictionary:
            if name not in known:
                raise InputError(
                    f"output.dictionary: unknown column {name!r} (the output's columns: "
                    f"{', '.join(known)})"
                )
        dictionary = list(dictionary)
    return {"compression": None if compression == "none" else compression,
            "use_dictionary": dictionary}


def parquet_writer(
    df: dd.DataFrame, path: str, storage_options: dict[str, Any] | None = None,
    compression: str = "snappy", dictionary: bool | Sequence[str] = True,
) -> Any:
    """A lazy Parquet write of ``df`` into ``path`` (a Dask object; nothing is written yet).

    ``compression`` and ``dictionary``: see :func:`parquet_options`.
    """
    return df.to_parquet(
        path, compute=False, write_index=False, storage_options=storage_options or None,
        write_metadata_file=False, **parquet_options(compression, dictionary, list(df.columns)),
    )


__all__ = ["parquet_options", "parquet_writer"]
