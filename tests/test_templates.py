"""Answers filled in from templates (mock_server/templates.py) are, byte for byte, `wire`'s bodies encoded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mock_server import wire
from mock_server.answers import answer
from mock_server.jobs import State
from mock_server.templates import submit_answer, waiting_answer

# Any base at all, worse than a Host header can make (the server keeps only valid ones): quotes,
# backslashes, control characters, the marker's own text and its JSON escape.
BASES = st.text() | st.sampled_from(
    ["http://h\\u0000request-id\\u0000", "http://h\\u0000request-id\x00", "\x00request-id\x00"]
)
REQUEST_IDS = st.uuids(version=4).map(str)  # as `jobs.new_request_id` writes them


@given(REQUEST_IDS, BASES)
def test_a_submit_answer_is_the_encoded_submit_body(request_id: str, base: str) -> None:
    assert submit_answer(request_id, base) == answer(wire.submit_body(request_id, base))


@given(REQUEST_IDS, st.sampled_from([State.QUEUED, State.PROCESSING]), BASES)
def test_a_waiting_status_answer_is_the_encoded_status_body(request_id: str, state: State, base: str) -> None:
    assert waiting_answer(request_id, state, base) == answer(wire.waiting_body(state, request_id, base))
