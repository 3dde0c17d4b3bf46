"""Small fsspec path helpers shared by the sinks: local or not, and a file where a folder must be.

Examples
--------
>>> import fsspec
>>> is_local(fsspec.filesystem("file")), is_local(fsspec.filesystem("memory"))
(True, False)
"""

from __future__ import annotations

import posixpath

import fsspec

from pipelines.errors import InputError


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local file system (real folders and atomic renames)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return bool({"file", "local"} & set(protocols))


def refuse_file_parent(fs: fsspec.AbstractFileSystem, path: str, key: str, shown: str) -> None:
    """Refuse ``path`` when one of its parent folders is a file (``afile/x``): one line naming ``key``.

    ``shown`` is the path as the user wrote it.

    Examples
    --------
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe("/paths-doctest/afile", b"x")
    >>> refuse_file_parent(fs, "/paths-doctest/afile/out", "output.path", "memory://paths-doctest/afile/out")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: output.path: memory://paths-doctest/afile/out: /paths-doctest/afile is a file, not a folder
    >>> fs.rm("/paths-doctest", recursive=True)
    """
    parent = posixpath.dirname(path.rstrip("/"))
    while parent and parent != posixpath.dirname(parent):
        if fs.isfile(parent):
            raise InputError(f"{key}: {shown}: {parent} is a file, not a folder")
        if fs.isdir(parent):  # every folder above it is one too
            return
        parent = posixpath.dirname(parent)
