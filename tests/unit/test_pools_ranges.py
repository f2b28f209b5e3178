"""The ``pf#0-3,5`` VF-index range syntax: what parses, and the exact error for what does not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sriov.errors import InvalidInputError
from sriov.ranges import MAX_VF_INDEX, DeviceRef, parse_vf_indexes, split_device_ref

VALID = [
    ("0", {0}),
    ("0-3", {0, 1, 2, 3}),
    ("0-3,5,7-9", {0, 1, 2, 3, 5, 7, 8, 9}),
    ("2-2", {2}),
    ("5,1", {1, 5}),
    ("255", {255}),
    ("0-255", set(range(256))),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_ranges(text: str, expected: set[int]) -> None:
    assert parse_vf_indexes(text) == frozenset(expected)


INVALID = [
    ("", "nothing after '#'"),
    ("3-1", "runs backwards"),
    ("a", "'a' is not a VF index"),
    ("1--2", "is not N or N-M"),
    ("1,,2", "empty part"),
    (",1", "empty part"),
    ("1,", "empty part"),
    ("1-", "needs a start and an end"),
    ("-1", "needs a start and an end"),
    ("256", "256 > 255"),
    ("0-300", "300 > 255"),
    (" 1", "not a VF index"),
    ("+1", "not a VF index"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[repr(t) for t, _ in INVALID])
def test_invalid_ranges(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_vf_indexes(text)


def test_split_device_ref() -> None:
    assert split_device_ref("ens1f0") == ("ens1f0", None)
    assert split_device_ref("ens1f0#0-3") == ("ens1f0", "0-3")
    assert split_device_ref("ens1f0#") == ("ens1f0", "")
    with pytest.raises(InvalidInputError, match="more than one '#'"):
        split_device_ref("ens1f0#1#2")


def test_device_ref_covers_and_prints_as_written() -> None:
    every = DeviceRef(device="ens1f0")
    some = DeviceRef(device="ens1f0", vf_indexes=frozenset({0, 1}), range_text="0-1")
    assert every.covers(200) and some.covers(1) and not some.covers(2)
    assert str(every) == "ens1f0" and str(some) == "ens1f0#0-1"


@given(st.frozensets(st.integers(min_value=0, max_value=MAX_VF_INDEX), min_size=1))
def test_any_index_list_parses_back_to_its_set(indexes: frozenset[int]) -> None:
    assert parse_vf_indexes(",".join(str(i) for i in sorted(indexes))) == indexes


@given(st.text(alphabet="0123456789,-# a", max_size=12))
def test_arbitrary_text_parses_or_fails_with_invalid_input(text: str) -> None:
    try:
        indexes = parse_vf_indexes(text)
    except InvalidInputError:
        return
    assert indexes and all(0 <= i <= MAX_VF_INDEX for i in indexes)
