"""Key codes of Arrow-backed (``str``) columns: factorized part by part and remembered, they equal
pandas' factorization of the rows end to end, also after rows are taken or values assigned."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import _keys
from pipelines._keys import key_codes, take_rows


def plain_codes(frames, by):
    """The definition: factorize the concatenated rows (object dtype: no Arrow path, no memory)."""
    both = pd.concat([f[by].astype(object) for f in frames], ignore_index=True)
    if not len(both):
        return np.zeros(0, np.int64), 0
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(both.fillna("<NA>")) if len(by) > 1
                                  else both[by[0]].fillna("<NA>"))
    return codes, len(uniques)


values = st.lists(st.sampled_from(["a", "b", "c", "dd", None]), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=4), st.data())
def test_codes_of_arrow_parts_equal_the_factorized_concatenation(parts, data):
    frames = [pd.DataFrame({"k": pd.array(p, dtype="str"), "j": np.arange(len(p)) % 2}) for p in parts]
    for by in (["k"], ["k", "j"]):
        for _ in range(2):  # the second time from memory
            codes, n_groups = key_codes(frames, by)
            want, want_n = plain_codes(frames, by)
            np.testing.assert_array_equal(codes, want)
            assert n_groups == want_n
    frame = frames[0]
    keep = np.flatnonzero(np.array(data.draw(st.lists(st.booleans(), min_size=len(frame), max_size=len(frame))),
                                   dtype=bool))
    taken = take_rows(frame, keep, ["k"])
    pd.testing.assert_frame_equal(taken, frame.iloc[keep])
    codes, n_groups = key_codes([taken, *frames[1:]], ["k"])
    want, want_n = plain_codes([frame.iloc[keep], *frames[1:]], ["k"])
    np.testing.assert_array_equal(codes, want)
    assert n_groups == want_n


def test_assigned_values_are_factorized_again():
    frame = pd.DataFrame({"k": pd.array(["a", "b", "a"], dtype="str")})
    assert key_codes([frame], ["k"])[0].tolist() == [0, 1, 0]
    frame.loc[0, "k"] = "b"
    assert key_codes([frame], ["k"])[0].tolist() == [0, 0, 1]
    frame["k"] = pd.array(["c", "c", "d"], dtype="str")
    assert key_codes([frame], ["k"])[0].tolist() == [0, 0, 1]


def test_remembered_codes_are_copies_and_forgotten_with_their_column():
    frame = pd.DataFrame({"k": pd.array(["x", "y"] * 50, dtype="str")})
    codes, _ = key_codes([frame], ["k"])
    codes[0] = 5  # the caller's own array
    again, _ = key_codes([frame], ["k"])
    assert again.dtype == np.int64 and again[:3].tolist() == [0, 1, 0]
    key = id(frame["k"].array.__arrow_array__())
    assert key in _keys._REMEMBERED
    del frame
    gc.collect()
    assert key not in _keys._REMEMBERED


def test_memory_is_bounded():
    frames = [pd.DataFrame({"k": pd.array([str(i)], dtype="str")}) for i in range(3 * _keys._REMEMBERED_MAX)]
    for frame in frames:
        key_codes([frame], ["k"])
    assert len(_keys._REMEMBERED) <= _keys._REMEMBERED_MAX
