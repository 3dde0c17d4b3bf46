"""The table flow's Parquet settings: ``output.compression`` and ``output.dictionary`` change how
the output is encoded, never its values; bad settings are one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import flows
from flows.config import ConfigError
from pipelines.errors import InputError

IN_PROCESS = {"n_workers": 2, "threads_per_worker": 1, "processes": False}


def run_quickstart(out: Path, **output: object) -> str:
    overrides = {"input.rows": 3000, "input.npartitions": 4, "cluster": IN_PROCESS,
                 "output.path": str(out), "summary": None}
    overrides |= {f"output.{key}": value for key, value in output.items()}
    return flows.run("configs/quickstart.yaml", overrides=overrides).output


def encodings(folder: str) -> dict[str, tuple[set[str], set[str]]]:
    """Per column: the codecs and the encodings of its chunks in every file of ``folder``."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(Path(folder.removeprefix("file://")).glob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                codecs, kinds = found.setdefault(chunk.path_in_schema, (set(), set()))
                codecs.add(chunk.compression)
                kinds.update(chunk.encodings)
    return found


def test_settings_change_the_encoding_not_the_values(tmp_path):
    default = run_quickstart(tmp_path / "default")
    zstd = run_quickstart(tmp_path / "zstd", compression="zstd", dictionary=["symbol"])
    plain = run_quickstart(tmp_path / "plain", compression="none", dictionary=False)
    expected = pd.read_parquet(default)
    for other in (zstd, plain):
        pd.testing.assert_frame_equal(pd.read_parquet(other), expected)
    assert {codec for codecs, _ in encodings(default).values() for codec in codecs} == {"SNAPPY"}
    by_column = encodings(zstd)
    assert {codec for codecs, _ in by_column.values() for codec in codecs} == {"ZSTD"}
    assert "RLE_DICTIONARY" in by_column["symbol"][1]
    assert all("RLE_DICTIONARY" not in kinds for name, (_, kinds) in by_column.items() if name != "symbol")
    assert "RLE_DICTIONARY" in encodings(default)["price"][1]  # today's default: every column
    plain_columns = encodings(plain)
    assert {codec for codecs, _ in plain_columns.values() for codec in codecs} == {"UNCOMPRESSED"}
    assert all("RLE_DICTIONARY" not in kinds for _, kinds in plain_columns.values())


def test_a_dictionary_column_not_in_the_output_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"^output.dictionary: unknown column 'sym' \(the output's columns: ts, symbol"):
        run_quickstart(tmp_path / "out", dictionary=["sym"])
    assert not (tmp_path / "out").exists()


def test_an_unknown_codec_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"output.compression"):
        run_quickstart(tmp_path / "out", compression="zip")
