"""Classroom challenge: the teacher sets an image, a model, a target and a budget; the class attacks it in the
Attack Lab from one link; this page is the live board (made for the projector) and the teacher's controls."""

import streamlit as st

from experiments.challenge import view as challenge_view
from ui.router import through_router

through_router()

st.title("Classroom challenge")
challenge_view.page()
