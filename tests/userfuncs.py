"""User functions for `map` steps in tests (importable on workers through PYTHONPATH)."""

import pandas as pd


def add_spread(df: pd.DataFrame, width: float = 0.01) -> pd.DataFrame:
    """Add bid/ask columns around the price."""
    return df.assign(bid=df["price"] - width / 2, ask=df["price"] + width / 2)


def explode(df: pd.DataFrame) -> pd.DataFrame:
    """Raise as soon as there is data (give `meta:` so that meta inference does not call it)."""
    if len(df):
        raise RuntimeError("boom: a user function failed mid-run")
    return df


def slow(df: pd.DataFrame, seconds: float = 0.3, marker: str = "") -> pd.DataFrame:
    """Sleep per partition (so a test can disturb the run mid-way); touch `marker` when started."""
    import os
    import time

    if marker and len(df):
        with open(os.path.join(marker, f"{os.getpid()}-{time.time_ns()}"), "w"):
            pass
    time.sleep(seconds if len(df) else 0)
    return df
