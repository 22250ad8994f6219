"""Adversarial Lab: the router. Page config, navigation and the presenter view's switch; every page lives in pages/.

To add a page, add one st.Page line to PAGES (the first page with default=True opens at the root URL).
"""

from pathlib import Path

import streamlit as st

from ui import presenter

#: Page files by absolute path, so the Cloud entry point (cloud/streamlit_app.py) routes to the same pages.
PAGES_DIR = Path(__file__).resolve().parent / "pages"

PAGES = [
    st.Page(PAGES_DIR / "attack_lab.py", title="Attack Lab", icon=":material/bug_report:", default=True),
    st.Page(PAGES_DIR / "fooling_images.py", title="Fooling images", icon=":material/blur_on:"),
    st.Page(PAGES_DIR / "transfer.py", title="Transfer between models", icon=":material/swap_horiz:"),
    st.Page(PAGES_DIR / "robustness.py", title="Robustness to transformations", icon=":material/rotate_right:"),
    st.Page(PAGES_DIR / "susceptibility.py", title="Susceptibility study", icon=":material/grid_on:"),
    st.Page(PAGES_DIR / "universal.py", title="Universal perturbations", icon=":material/grain:"),
    st.Page(PAGES_DIR / "patch.py", title="Adversarial patch", icon=":material/sell:"),
    st.Page(PAGES_DIR / "defenses.py", title="Defenses and detection", icon=":material/shield:"),
    st.Page(PAGES_DIR / "challenge.py", title="Classroom challenge", icon=":material/groups:"),
    st.Page(PAGES_DIR / "how_it_works.py", title="How it works", icon=":material/school:"),
]

st.set_page_config(page_title="Adversarial Lab", page_icon=":material/bug_report:", layout="wide")
page = st.navigation(PAGES, position="top" if presenter.on() else "sidebar")
presenter.switch()  # on every page: the sidebar hidden, the links on top, text and charts larger
page.run()
