"""The fast JSON codec of the ingestion path reads and writes exactly what the standard library does."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp import json_codec

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)  # beyond 64 bits too: order numbers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_reads_back_what_the_standard_library_writes(value):
    text = json.dumps(value, ensure_ascii=False)
    assert json_codec.loads(text.encode()) == json.loads(text)
    assert json.loads(json_codec.dumps(value)) == value


def test_a_twenty_digit_order_number_keeps_every_digit():
    assert json_codec.loads(b'{"order_id": 12345678901234567890123}') == {"order_id": 12345678901234567890123}


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b"{'a': 1}", b'{"a": 1', b"\xff"])
def test_what_the_standard_library_refuses_is_refused(raw):
    with pytest.raises(ValueError):
        json_codec.loads(raw)
