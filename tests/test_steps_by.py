"""Every step takes ``by`` as a name, list, tuple or ``pd.Index`` alike, with the same result.

Each form is checked against the plain reference of the step (given the keys as a list), over
partitions that split keys, with missing keys and an empty partition.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.dataframe.utils import assert_eq

from pipelines.dedup import drop_consecutive_duplicates
from pipelines.lookahead import future_features, map_lookahead
from pipelines.summary import moments, summarize

try:
    from reference import (
        reference_drop_consecutive_duplicates,
        reference_future_features,
        reference_summarize,
    )
except ImportError:  # tests/ collected as a package
    from tests.reference import (
        reference_drop_consecutive_duplicates,
        reference_future_features,
        reference_summarize,
    )

KEYS = {"one key": ["key"], "two keys": ["key", "k2"]}


def forms(keys: list[str]) -> list:
    """``keys`` in every form a user may give them (a bare name only for one key)."""
    out = [list(keys), tuple(keys), pd.Index(keys)]
    return [keys[0], *out] if len(keys) == 1 else out


CASES = [
    pytest.param(keys, by, id=f"{name}-{type(by).__name__}")
    for name, keys in KEYS.items()
    for by in forms(keys)
]


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture(scope="module")
def pdf() -> pd.DataFrame:
    """Ticks of interleaved keys (missing ones too), values in runs (duplicates), sorted times."""
    rng = np.random.default_rng(7)
    n = 60
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(rng.choice([0, 1, 2], n)), "s")
    x = rng.choice([1.0, 2.0, np.nan], n)
    x[rng.random(n) < 0.5] = 1.0  # runs of equal values
    return pd.DataFrame(
        {
            "key": pd.Series(rng.choice(["a", "b", None], n), dtype="str"),
            "k2": rng.integers(0, 2, n),
            "x": x,
        },
        index=pd.DatetimeIndex(ts, name="ts"),
    )


def split(pdf: pd.DataFrame) -> dd.DataFrame:
    """Partitions of 25, 0, 1 and 34 rows: keys spread over partitions, one empty."""
    bounds = [0, 25, 25, 26, len(pdf)]
    parts = [dask.delayed(pdf.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return dd.from_delayed(parts, meta=pdf.iloc[:0], verify_meta=False)


@pytest.mark.parametrize("keys, by", CASES)
def test_dedup(pdf, keys, by):
    out = drop_consecutive_duplicates(split(pdf), subset="x", by=by)
    assert_eq(out, reference_drop_consecutive_duplicates(pdf, subset="x", by=keys))


@pytest.mark.parametrize("horizon", [2, "3s"])
@pytest.mark.parametrize("keys, by", CASES)
def test_future_features(pdf, keys, by, horizon):
    features = ["future", "max", "count"]
    out = future_features(split(pdf), horizon, "x", features, by=by, partial=True)
    expected = reference_future_features(pdf, horizon, "x", features, by=keys, partial=True)
    assert_eq(out, expected, check_divisions=False)


@pytest.mark.parametrize("keys, by", CASES)
def test_map_lookahead(pdf, keys, by):
    def next_x(frame: pd.DataFrame, n_own: int) -> pd.Series:  # x of the key's next row
        return frame.groupby(keys, dropna=False)["x"].shift(-1).iloc[:n_own].rename("next")

    out = map_lookahead(split(pdf), next_x, 1, by=by)
    expected = reference_future_features(pdf, 1, "x", "future", by=keys, label="r")["x_future_r"]
    assert_eq(out, expected.rename("next"))


@pytest.mark.parametrize("keys, by", CASES)
def test_summarize_and_moments(pdf, keys, by):
    expected = reference_summarize(pdf, "x", by=keys)
    table = summarize(split(pdf), columns="x", by=by).compute()
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, check_index_type=False,
                                  rtol=1e-12)
    state = moments(split(pdf), columns="x", by=by).compute()
    pd.testing.assert_frame_equal(state.to_frame(), table)
