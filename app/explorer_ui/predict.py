"""Predict, then reveal (teacher mode): a page asks its question before it shows the measured answer, and the
class poll around a question.

``ask(question, measured)`` draws the question with 2-4 choices and a *Commit my answer* button, and returns
False until the session has committed one; the page shows the answer and its chart only when it returns True.
``reveal=1`` in the link skips the questions. *Poll the class* opens a poll on the question
(``resnet_core.polls``) and gives two links: the students' (``poll=<id>``: their committed answers go to the
poll) and the teacher's (``poll=<id>&key=<key>``: the distribution live beside the measured answer, a QR code
and the short link for the projector, close, reset and CSV export). A poll that cannot be used (a damaged or
unwritable database) is one sentence; the question works without it.
"""

from __future__ import annotations

import io
from urllib.parse import urlencode

import plotly.graph_objects as go
import streamlit as st

from explorer_ui.figures import for_session
from explorer_ui.url_params import app_wide
from resnet_core.plots import style
from resnet_core.polls import Poll, PollError, PollStore, new_session_id
from resnet_core.questions import Question, reveal_sentence

ANSWERS_KEY = "_predictions"  # question id -> the committed choice index, for the session
SESSION_KEY = "_poll_session"  # the session's random id in polls
OPENED_KEY = "_opened_polls"  # question id -> (poll id, key) of the polls this session opened
POLL_NOTICE_KEY = "_poll_notice"  # the last poll failure's sentence, shown once
LIVE_SECONDS = 2


def _session_id() -> str:
    if SESSION_KEY not in st.session_state:
        st.session_state[SESSION_KEY] = new_session_id()
    return st.session_state[SESSION_KEY]


def _links(poll_id: str, key: str) -> tuple[str, str]:
    """(the students' link, the teacher's link) to this page with its current settings and the poll."""
    url = st.context.url or ""
    base = url.split("?", 1)[0] if url else ""
    keep = [(name, value) for name in st.query_params for value in st.query_params.get_all(name)
            if name not in ("poll", "key", "reveal")]
    student = f"{base}?{urlencode([*keep, ('poll', poll_id)], safe=',:')}"
    return student, f"{base}?{urlencode([*keep, ('poll', poll_id), ('key', key)], safe=',:')}"


def _linked_poll(question: Question) -> tuple[PollStore, Poll] | None:
    """The poll this session's link names, when it is on ``question`` and still open for business."""
    poll_id = app_wide("poll")
    if not poll_id:
        return None
    store = PollStore()
    try:
        poll = store.poll(poll_id)
    except PollError as error:
        st.session_state[POLL_NOTICE_KEY] = str(error)
        return None
    if poll is None or poll.question_id != question.id:
        return None
    return store, poll


def ask(question: Question, measured: int | None) -> bool:
    """Draw ``question`` unless it has been answered (or the link says ``reveal=1``); True once its answer may be
    shown. ``measured``: the right choice, derived by ``question.answer`` from the page's result, or None while
    the result is still coming (a race that trains: the reveal says so)."""
    answers = st.session_state.setdefault(ANSWERS_KEY, {})
    linked = _linked_poll(question)
    notice = st.session_state.pop(POLL_NOTICE_KEY, None)
    if notice:
        st.warning(notice)
    if linked is not None and app_wide("key"):
        try:
            teacher = linked[0].is_teacher(linked[1].poll_id, app_wide("key"))
        except PollError as error:
            st.warning(str(error))
            teacher = False
        if teacher:
            _teacher_view(question, measured, *linked, key=app_wide("key"))
            return True
        st.warning("This link's key does not open the poll's teacher view; the question is asked as it is to a "
                   "student.")
    if question.id in answers:
        chosen = answers[question.id]
        st.info(reveal_sentence(question, measured, chosen) if measured is not None else
                f"You predicted \"{question.choices[chosen]}\". The answer is still being measured: the charts "
                "below will tell.", icon=":material/lightbulb:")
        return True
    if app_wide("reveal"):
        return True
    with st.container(border=True):
        st.markdown(f"**Predict first.** {question.prompt}")
        pick = st.radio("Your prediction", list(range(len(question.choices))), index=None,
                        format_func=lambda i: question.choices[i], key=f"predict_{question.id}")
        left, right = st.columns(2)
        if left.button("Commit my answer", key=f"predict_commit_{question.id}", type="primary",
                       disabled=pick is None):
            answers[question.id] = int(pick)
            if linked is not None:
                try:
                    linked[0].answer(linked[1].poll_id, _session_id(), int(pick))
                except PollError as error:
                    st.session_state[POLL_NOTICE_KEY] = str(error)
            st.rerun()
        if linked is None:
            _poll_button(question, right)
        else:
            right.caption("Your answer goes to your class's poll.")
    return False


MAX_POLLS_PER_SESSION = 20  # a session that opens more is refused (each poll is a row until it expires)


def _poll_button(question: Question, where) -> None:
    opened = st.session_state.setdefault(OPENED_KEY, {})
    count = st.session_state.get(OPENED_KEY + "_count", 0)
    if where.button("Poll the class", key=f"poll_open_{question.id}", icon=":material/how_to_vote:"):
        if count >= MAX_POLLS_PER_SESSION:
            st.warning(f"This session has opened {MAX_POLLS_PER_SESSION} polls; reuse their links, or open a new "
                       "session for more.")
        else:
            try:
                opened[question.id] = PollStore().open_poll(question.id, len(question.choices))
                st.session_state[OPENED_KEY + "_count"] = count + 1
            except PollError as error:
                st.warning(str(error))
    if question.id in opened:
        student, teacher = _links(*opened[question.id])
        st.markdown("**Students open:**")
        st.code(student, language=None, wrap_lines=True)
        st.markdown("**You open (keep it to yourself: it closes, resets and exports the poll):**")
        st.code(teacher, language=None, wrap_lines=True)


def qr_png(text: str) -> bytes:
    """A QR code of ``text`` as PNG bytes (for the projector)."""
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()


def tally_figure(question: Question, counts: list[int], measured: int | None) -> go.Figure:
    """The class's answers per choice, the measured answer's bar marked."""
    colors = [style.RESIDUAL if i == measured else style.GUIDE for i in range(len(question.choices))]
    fig = go.Figure(go.Bar(x=counts, y=list(question.choices), orientation="h", marker={"color": colors},
                           text=[str(c) for c in counts], textposition="auto",
                           hovertemplate="%{y}: %{x} answers<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="answers", rangemode="tozero", dtick=1 if max(counts, default=0) < 10 else None)
    return style.layout(fig, 120 + 50 * len(counts), top=10, bottom=40)


def _teacher_view(question: Question, measured: int | None, store: PollStore, poll: Poll, *, key: str) -> None:
    """The teacher's view of a poll: the live distribution beside the measured answer, the projector's QR code
    and short link, and the controls only the key opens."""
    student, _ = _links(poll.poll_id, key)
    with st.container(border=True):
        st.markdown(f"**Class poll.** {question.prompt}")
        chart, code = st.columns([3, 1])
        code.image(qr_png(student), caption="Scan to answer", width=200)
        code.code(student, language=None, wrap_lines=True)

        @st.fragment(run_every=LIVE_SECONDS)
        def live() -> None:
            try:
                counts = store.tally(poll.poll_id)
                state = store.poll(poll.poll_id)
            except PollError as error:
                st.warning(str(error))
                return
            st.plotly_chart(for_session(tally_figure(question, counts, measured)),
                            key=f"poll_tally_{question.id}")
            total = sum(counts)
            closed = state is not None and state.closed
            st.caption(f"{total} answer{'s' if total != 1 else ''} so far"
                       + ("; the poll is closed." if closed else "; updated every few seconds."))
            st.markdown(reveal_sentence(question, measured) if measured is not None else
                        "The answer is still being measured.")

        with chart:
            live()
        one, two, three = st.columns(3)
        try:
            current = store.poll(poll.poll_id)
            if one.button("Reopen the poll" if current is not None and current.closed else "Close the poll",
                          key=f"poll_close_{question.id}"):
                store.close(poll.poll_id, key, closed=not (current is not None and current.closed))
                st.rerun()
            if two.button("Reset the answers", key=f"poll_reset_{question.id}"):
                store.reset(poll.poll_id, key)
                st.rerun()
            three.download_button("Export the answers (CSV)", data=store.export_csv(poll.poll_id, key),
                                  file_name=f"poll-{poll.poll_id}.csv", mime="text/csv",
                                  key=f"poll_export_{question.id}", on_click="ignore")
        except PollError as error:
            st.warning(str(error))
