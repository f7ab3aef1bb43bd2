"""The header a reconnecting page sends: the earlier session's id is its third entry (see explorer_ui.reconnect;
the whole path, a replica killed behind nginx, is tests/browser/test_replicas.py)."""

from __future__ import annotations

import pytest
from explorer_ui.reconnect import earlier_session_id


@pytest.mark.parametrize(("header", "claimed"), [
    (None, None),
    ("", None),
    ("streamlit", None),  # a first visit
    ("streamlit, xsrf-token", None),
    ("streamlit, xsrf-token, ", None),  # positions kept: an empty third entry is no id
    ("streamlit, , 6b1c2f4e-0c1d-4a8e-9f7e-1d2c3b4a5f60", "6b1c2f4e-0c1d-4a8e-9f7e-1d2c3b4a5f60"),
    ("streamlit,token,abc", "abc"),
])
def test_the_earlier_session_is_the_third_entry(header, claimed) -> None:
    assert earlier_session_id(header) == claimed
