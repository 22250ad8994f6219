"""Adversarial Lab: the router. Page config and navigation only; every page lives in pages/.

To add a page, add one st.Page line to PAGES (the first page with default=True opens at the root URL).
"""

import streamlit as st

PAGES = [
    st.Page("pages/attack_lab.py", title="Attack Lab", icon=":material/bug_report:", default=True),
    st.Page("pages/fooling_images.py", title="Fooling images", icon=":material/blur_on:"),
    st.Page("pages/transfer.py", title="Transfer between models", icon=":material/swap_horiz:"),
    st.Page("pages/robustness.py", title="Robustness to transformations", icon=":material/rotate_right:"),
]

st.set_page_config(page_title="Adversarial Lab", page_icon=":material/bug_report:", layout="wide")
st.navigation(PAGES).run()
