"""The one error type that means "the input is wrong, and here is which part".

Every step raises :class:`InputError` for bad input (unknown column, unsorted time, a matrix of the
wrong shape, ...). Its message is one line that names the culprit and, where it helps, what to do.
The CLI turns it into exit code 2 without a traceback; the Python API lets it propagate.
It subclasses :class:`ValueError`, so ``except ValueError`` keeps working for library users.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a one-line message naming the culprit (file, key path or column).

    Examples
    --------
    >>> raise InputError("column 'price': not numeric (dtype str)")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: column 'price': not numeric (dtype str)
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty).

    >>> first_line(OSError("disk full\\nmore detail"))
    'disk full'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
