"""Every notebook runs top to bottom on a LocalCluster, and shows what it promises."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def outputs(cell) -> list:
    return cell.get("outputs", []) if cell.cell_type == "code" else []


def stream_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in outputs(c) if o.output_type == "stream")


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in outputs(c))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_FLOWS_ROOT", str(REPO))
    monkeypatch.setenv("DASK_FLOWS_OUT", str(tmp_path / "out"))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    nb = nbformat.read(path, as_version=4)
    assert not any(outputs(c) for c in nb.cells), f"{path.name}: commit notebooks without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = stream_text(nb)
    if path.name == "quickstart.ipynb":
        assert "dashboard: http" in text
        assert "summary rows: 20" in text  # 10 symbols x 2 columns
        assert images(nb) == 3  # the price band, the heatmap and one pair's S table
        assert re.search(r"1-NN accuracy with a window of 5: 0\.[0-9]{3}", text)
        accuracy = float(re.search(r"1-NN accuracy: ([0-9.]+)", text).group(1))
        assert accuracy > 0.85  # nine speakers: chance is 0.11
        assert (tmp_path / "out/heatmap.png").exists()
    if path.name == "windows.ipynb":
        labels = re.search(r"barrier labels of S\d+: (\{.*\})", text)
        assert labels and all(f"{v}:" in labels.group(1) for v in ("1.0", "-1.0", "0.0"))
        assert images(nb) == 1  # the barrier labels over the price
        assert (tmp_path / "out/barrier.png").exists()
