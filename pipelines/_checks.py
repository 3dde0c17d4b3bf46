"""Checks of column arguments shared by the steps, with one message style.

A bad column is reported as ``{parameter}: unknown column {name!r} (columns: a, b, c)``: the
parameter as the user wrote it, the culprit, and what there is to choose from.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from pipelines.errors import InputError

__all__ = ["check_columns"]


def check_columns(
    parameter: str,
    names: Sequence[Hashable],
    available: Iterable[Hashable],
    unique: bool = True,
) -> None:
    """Raise :class:`InputError` when a name is not in ``available`` (or, if ``unique``, repeated).

    Examples
    --------
    >>> check_columns("by", ["a"], ["a", "b"])
    >>> check_columns("by", ["a", "x"], ["a", "b"])
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: by: unknown column 'x' (columns: a, b)
    >>> check_columns("columns", ["a", "a"], ["a", "b"])
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: columns: column 'a' is listed twice
    """
    known = list(available)
    seen: set[Hashable] = set()
    for name in names:
        if name not in known:
            listing = ", ".join(map(str, known))
            raise InputError(f"{parameter}: unknown column {name!r} (columns: {listing})")
        if unique and name in seen:
            raise InputError(f"{parameter}: column {name!r} is listed twice")
        seen.add(name)
