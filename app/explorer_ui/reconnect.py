"""A browser whose session ended elsewhere: one sentence saying so, in the fresh session it reconnected to.

Streamlit keeps a session in one server process. When that process stops (a replica behind ``make serve``
killed, a restarted server), the page reconnects on its own and asks for its earlier session by id (the third
entry of the websocket's ``Sec-WebSocket-Protocol`` header). A server that does not hold that session starts a
fresh one, which runs the page from its URL: the link's settings come back, the uploads and results held in
the old process do not. This module notices that case and says it once, on the page the browser was on.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

# The page's own timer: Streamlit's page reruns by itself after a reconnect only while it has a timed fragment
# (otherwise it assumes its session was resumed and keeps showing the old, now dead, view). It fires rarely.
RERUN_TIMER_S = 300
SEEN_KEY = "_reconnect_seen"  # (earlier session id or "", the url path it was noticed on)
ENDED_SENTENCE = ("Your earlier session ended (its server stopped, or it waited too long to reconnect), so this "
                  "is a fresh session with your link's settings; anything you uploaded or computed there is gone: "
                  "upload it again.")


def earlier_session_id(protocol_header: str | None) -> str | None:
    """The session id a reconnecting page asks for (the header's third comma-separated entry), or None."""
    entries = [entry.strip() for entry in (protocol_header or "").split(",")]
    return entries[2] if len(entries) >= 3 and entries[2] else None


def _timer() -> None:
    """Draws nothing: its timer is what makes a reconnected page run again (see RERUN_TIMER_S)."""


def notice_ended_session(url_path: str) -> None:
    """On a session's first run: was the browser asking for another session? Then, on that page, say so. Also
    arms the timer that makes a page run again as soon as it reconnects to a fresh session."""
    st.fragment(_timer, run_every=RERUN_TIMER_S)()
    if SEEN_KEY not in st.session_state:
        claimed = earlier_session_id(st.context.headers.get("sec-websocket-protocol"))
        ctx = get_script_run_ctx()
        ended = claimed is not None and ctx is not None and claimed != ctx.session_id
        st.session_state[SEEN_KEY] = (claimed if ended else "", url_path)
    claimed, noticed_on = st.session_state[SEEN_KEY]
    if claimed and noticed_on == url_path:
        st.info(ENDED_SENTENCE, icon=":material/sync_problem:")
