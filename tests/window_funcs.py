"""User functions for `lookahead_map` steps in tests (importable on workers through PYTHONPATH)."""

import pandas as pd


def next_max(frame: pd.DataFrame, n_own: int, column: str = "price", rows: int = 3,
             by: str = "symbol") -> pd.DataFrame:
    """The own rows with ``{column}_next_max``: the max of the next ``rows`` values of the key
    (NaN skipped; NaN when there are none), from the own rows followed by the future ones."""
    nxt = frame.groupby(by, dropna=False)[column].transform(
        lambda s: s[::-1].rolling(rows, min_periods=1).max().shift(1)[::-1])
    return frame.iloc[:n_own].assign(**{f"{column}_next_max": nxt.iloc[:n_own]})


def next_value(frame: pd.DataFrame, n_own: int, column: str = "price",
               by: str = "symbol") -> pd.DataFrame:
    """The own rows with ``{column}_next``: the next value of the key (NaN for its last row)."""
    nxt = frame.groupby(by, dropna=False)[column].shift(-1)
    return frame.iloc[:n_own].assign(**{f"{column}_next": nxt.iloc[:n_own]})


def needs_bid(frame: pd.DataFrame, n_own: int) -> pd.DataFrame:
    """Fails on a frame without a ``bid`` column (so its output cannot be inferred on ticks)."""
    return frame.iloc[:n_own].assign(spread=frame["bid"].iloc[:n_own] - frame["price"].iloc[:n_own])
