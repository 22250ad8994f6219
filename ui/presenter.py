"""The presenter view, on every page (issue 20): for the back row of a classroom, the sidebar gone (the page links
move to a bar at the top), the page edge to edge, text and charts larger, the Lab's setup folded.

Why a module of its own, with nothing but Streamlit in it: the router (app.py) must know before st.navigation
whether the view is on (the links go to the top), and the router stays page-config-and-navigation light.
"""

from __future__ import annotations

import streamlit as st

PRESENT = "present"  # the presenter view's toggle (session state key)
SETUP_OPEN = "setup_open"  # the Lab's setup panel; Run and the presenter view fold it so the story moves up
_SEEDED = "present.url_seeded"

PRESENTER_CSS = """<style>
.st-key-presenter { position: fixed; top: 0.55rem; right: 4rem; z-index: 1000001; width: auto !important; }
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"]
  { display: none; }
[data-testid="stMainBlockContainer"] { padding: 3.5rem 2rem 2rem 2rem; max-width: 100%; }
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMainBlockContainer"] [data-testid="stAlertContainer"] p { font-size: 1.3rem; }
[data-testid="stImageCaption"], [data-testid="stCaptionContainer"] { font-size: 1.1rem; }
[data-testid="stMainBlockContainer"] input, [data-testid="stMainBlockContainer"] [data-baseweb="select"]
  { font-size: 1.15rem; }
[data-testid="stMainBlockContainer"] [data-testid="stSliderThumbValue"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMainBlockContainer"] [data-testid="stSliderTickBar"] [data-testid="stMarkdownContainer"] p
  { font-size: 1.1rem; line-height: 1.4rem; }
</style>"""


def on() -> bool:
    """Whether this session shows the presenter view. A session's first link with ?present=1 turns it on; after
    that only the toggle does, so a later link without it does not turn it off."""
    state = st.session_state
    state.setdefault(PRESENT, False)
    if not state.get(_SEEDED):
        state[_SEEDED] = True
        if st.query_params.get("present") in ("1", "true", "yes"):
            state[PRESENT] = True
            state[SETUP_OPEN] = False
    return bool(state[PRESENT])


def _changed() -> None:
    """on_change of the toggle: turning it on folds the Lab's setup into its one-line summary, so the story
    (images, bars, verdict) gets the screen."""
    if st.session_state[PRESENT]:
        st.session_state[SETUP_OPEN] = False


def switch() -> bool:
    """The toggle, and the view's look when on. Off, the toggle sits in the sidebar under the page links; on,
    pinned at the top right. The link keeps present=1 while it is on, so a reload stays in it. Called by the router
    before the page runs; returns whether the view is on.

    A slider's value and its min/max are markdown too, but sit in a box one 22.4-px line tall just above (or below)
    the track: they grow less and keep that line height, so the value never runs into the track and thumb."""
    presenting = on()
    if presenting:
        st.html(PRESENTER_CSS)  # style only: st.html puts it in no visible element
    with st.container(key="presenter") if presenting else st.sidebar:
        st.toggle(
            "Presenter view",
            key=PRESENT,
            on_change=_changed,
            help="For a projector's back row: the sidebar and the setup fold away, text and charts are drawn "
            "larger. A link opens in it with ?present=1.",
        )
    if presenting and st.query_params.get("present") != "1":
        st.query_params["present"] = "1"
    elif not presenting and "present" in st.query_params:
        del st.query_params["present"]
    return presenting
