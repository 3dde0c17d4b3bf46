"""The array module of a computation: NumPy on the CPU, CuPy on a GPU, one code path for both.

Every GPU-capable step writes ``xp = array_module(device)`` (or ``get_namespace(x)``) and uses
``xp.`` calls only, so the CPU tests exercise the GPU logic. :func:`to_host` is the one way back to
NumPy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from pipelines.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
NO_CUDA = (
    "{key}: cuda needs CuPy and a visible GPU (install the 'gpu' extra, check nvidia-smi), "
    "or use device: auto | cpu"
)


def cupy_or_none() -> Any:
    """CuPy if it imports and sees a GPU, else ``None`` (never raises)."""
    try:
        import cupy  # noqa: PLC0415 -- optional, imported only when asked for
    except Exception:  # ImportError, or a CUDA library that fails to load
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # CUDARuntimeError: no driver, no device
        return None
    return cupy


def check_device(device: str, key: str = "device") -> str:
    """Refuse a device name that is not ``auto``, ``cpu`` or ``cuda``; errors name ``key``.

    >>> check_device("cpu")
    'cpu'
    >>> check_device("tpu", key="compare.device")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: compare.device: 'tpu' is not one of auto, cpu, cuda
    """
    if device not in DEVICES:
        raise InputError(f"{key}: {device!r} is not one of auto, cpu, cuda")
    return device


def resolve_device(device: str, key: str = "device") -> str:
    """``"auto"`` -> ``"cuda"`` if CuPy imports and a GPU is visible here, else ``"cpu"``.

    ``"cuda"`` without CuPy or without a GPU is an :class:`InputError` naming ``key``.

    >>> resolve_device("cpu")
    'cpu'
    """
    if check_device(device, key) == "cpu":
        return "cpu"
    if cupy_or_none() is not None:
        return "cuda"
    if device == "cuda":
        raise InputError(NO_CUDA.format(key=key))
    return "cpu"


def array_module(device: str) -> Any:
    """``numpy`` for ``"cpu"``, ``cupy`` for ``"cuda"`` (imported only then)."""
    if resolve_device(device) == "cuda":
        import cupy  # noqa: PLC0415

        return cupy
    return np


def get_namespace(*arrays: Any) -> ModuleType:
    """The array module of ``arrays``: ``cupy`` for CuPy arrays, ``dask.array`` for Dask arrays,
    else ``numpy``.

    Examples
    --------
    >>> get_namespace(np.ones(3)).__name__
    'numpy'
    >>> get_namespace(1.5).__name__
    'numpy'
    """
    for array in arrays:
        module = type(array).__module__.split(".")[0]
        if module == "cupy":
            import cupy  # noqa: PLC0415

            return cupy
        if module == "dask" and hasattr(array, "chunks"):
            import dask.array as da  # noqa: PLC0415

            return da
    return np


def to_host(x: Any) -> np.ndarray:
    """A NumPy array from a CuPy array (``.get()``), a NumPy array or a scalar.

    >>> to_host(2.0)
    array(2.)
    """
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)


__all__ = ["DEVICES", "array_module", "check_device", "cupy_or_none", "get_namespace", "resolve_device", "to_host"]
