"""environment.yml and pyproject.toml name the same packages with the same lower bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name, where they differ
CONDA_NAMES = {"cupy-cuda12x": "cupy"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", requirement)
    assert match, requirement
    name = match.group(1).lower().replace("_", "-")
    return CONDA_NAMES.get(name, name), match.group(3).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = dict(_split(r) for r in project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        if extra != "gpu":
            found.update(_split(r) for r in items)
    return found


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    items = [d for d in env["dependencies"] if isinstance(d, str)]
    found = dict(_split(d) for d in items)
    found.pop("python"), found.pop("pip")
    return found


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_gpu_section_is_documented():
    text = (REPO / "environment.yml").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"]["gpu"]:
        name, bound = _split(requirement)
        assert re.search(rf"#\s*- {re.escape(name)}{re.escape(bound)}", text), requirement


def test_python_and_dask_cuda_pin_admitted():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    bounds = dict(_split(r) for r in project["dependencies"])
    # dask-cuda 26.10 pins dask/distributed 2026.7.1: our lower bounds must admit it
    assert bounds["dask"] == ">=2026.7.1" and bounds["distributed"] == ">=2026.7.1"
    assert project["scripts"]["dask-flows"] == "flows.cli:main"
