"""Topic parsing and reading bodies, fed random and damaged input: only DecodeError escapes."""

import contextlib
import re

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from luciole.protocols import readings
from luciole.protocols.errors import DecodeError
from luciole.protocols.ids import is_valid_id
from luciole.protocols.topics import PATTERNS, Topics

TOPICS = Topics("issy")
LEVEL = st.sampled_from(["devices", "cmd", "parking", "spots", "x", "", "+", "#", "PS-1", "a" * 65])


@given(st.lists(st.one_of(LEVEL, st.text(max_size=8)), max_size=6))
def test_any_topic_parses_or_is_refused(levels):
    topic = "luciole/v1/issy/" + "/".join(levels)
    try:
        name, ids = TOPICS.parse(topic)
    except DecodeError:
        return
    assert name in PATTERNS and TOPICS.build(name, *ids) == topic


ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")  # DESIGN.md section 4


@given(st.text(alphabet="az09-A_.\u00e9 ", max_size=70) | st.text(max_size=70))
def test_an_id_is_valid_exactly_when_it_matches_the_contract(text):
    # the check reads bytes, not characters (a board would keep each character it made as a
    # name): the contract's regex decides all the same
    assert is_valid_id(text) == bool(ID_PATTERN.fullmatch(text))


body_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "id": body_values | st.just("ps-1"),
        "seq": body_values,
        "r": body_values,
        "t": body_values,
    },
)


@given(st.binary(max_size=64) | bodies.map(cbor2.dumps))
def test_any_body_decodes_or_is_refused(body):
    with contextlib.suppress(DecodeError):
        readings.decode(body)
