"""Every page is run through app.py's router, also when a deep link is the first thing the server is asked for.

Why: `streamlit run app.py` next to a top-level `pages/` folder starts Streamlit in its older pages-folder mode
(PagesManager.uses_pages_directory), in which a link such as /transfer runs pages/transfer.py alone, without the
router's page config and navigation ("app", "attack lab"... in the sidebar), until someone opens the root URL and
app.py's st.navigation switches the mode off. Each page calls `through_router()` first: in that mode it switches it
off and reruns, so app.py runs, st.navigation resolves the same URL, and the page draws inside the app. On Streamlit
Community Cloud the entry point is cloud/streamlit_app.py, with no pages/ folder beside it, so it never triggers.

Why it must touch a Streamlit internal: Streamlit has no public switch for the mode, and the design card asks for a
top-level `pages/`. tests/test_app.py::test_router_relies_on_a_streamlit_internal_that_still_exists fails when a
Streamlit release renames or removes the flag, and tests/e2e/test_deep_link.py checks the behaviour in a browser.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def through_router() -> None:
    """Rerun through app.py when Streamlit ran this page file alone (see the module docstring)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
