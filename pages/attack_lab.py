"""Attack Lab: pick an image, a model and a target class, press Run, and watch the classifier being fooled.

Thin on purpose: widgets (ui.pickers) -> settings (ui.state, mirrored in the URL) -> the run (ui.run, drawn by
experiments.lab.view).
"""

from functools import partial

import streamlit as st

from experiments.challenge import view as challenge_view
from experiments.lab import record as lab_record
from experiments.lab import view as lab_view
from experiments.universal import view as universal_view
from ui import loaders, pickers, presenter, run, state, widgets
from ui.router import through_router

through_router()

state.init_state()
mode = challenge_view.lab_mode()  # opened from a classroom challenge's link: the setup is the challenge's
job = run.job(lab_record.JOB)
running = job.busy
if job.status == "requested":
    st.session_state[state.SETUP_OPEN] = False  # fold the setup: on a projector the live view needs the screen


presenting = presenter.on()  # its toggle and look: the router's
st.title("Attack Lab" if mode is None else "Attack Lab · classroom challenge")
if mode is None and not presenting:
    st.caption(
        "An invisible change of a few grey levels makes a classifier see whatever you like. "
        "Pick an image, a model and a target class, press **Run**, and watch it happen."
    )
if mode is None:
    for message in state.url_errors():
        st.error(f"{message[:1].upper()}{message[1:]}.")
    submitted = None
else:
    submitted = challenge_view.lab_header(mode, disabled=running)

# Run and Stop above the setup (filled in below, once the setup is known): on first load at 1366x768 the open
# setup fills the screen and would push them below the fold.
controls = st.container()
fixed = mode is not None  # a challenge fixes image, model and target
summary = pickers.setup_summary(mode.challenge.image_name if fixed else None)
with st.expander(summary, expanded=True, key=state.SETUP_OPEN, on_change="rerun"):
    col_image, col_seen, col_goal, col_attack = st.columns([1.45, 1, 1.15, 1], gap="medium")
    with col_image:
        st.markdown("**1 · Image**")
        if fixed:
            image = pickers.ImageChoice(name=mode.challenge.image_name, data=mode.challenge.image_png)
            st.caption(f"Fixed by challenge {mode.challenge.code}: every student attacks this same image.")
        else:
            image = pickers.image_picker(disabled=running)
    with col_goal:
        st.markdown("**2 · Model and target**")
        model_name = pickers.model_picker(disabled=running or fixed)
    with col_seen:
        seen = pickers.model_view(model_name, image, exact=fixed)
    with col_goal:
        target, target_ok = pickers.target_picker(seen, disabled=running or fixed)
    with col_attack:
        st.markdown("**3 · Attack**")
        choice = pickers.attack_picker(target, disabled=running, names=mode.attacks if fixed else None)
blocker = pickers.run_blocker(seen, target, target_ok, choice, needs_nickname=fixed and mode.nickname is None)
ready = blocker is None

query = state.settings_query(
    image=image.sample_id if image is not None else None,
    model=st.session_state[state.MODEL],
    target=target,
    attack=choice.name,
    params=choice.params,
    confidence=choice.confidence,
)
state.write_url((mode.query if fixed else query) | ({"present": "1"} if presenting else {}))

run_col, stop_col, status = controls.columns([1, 1, 6], gap="small", vertical_alignment="center")
run.buttons(job, ready=ready, settings=state.setting_keys(), columns=(run_col, stop_col), scheduled=True)
view = lab_view.LiveView(status)
on_finish = partial(challenge_view.submit, mode) if fixed else None
lab_view.live(
    job, view, seen=seen, image=image, target=target, choice=choice, query=query, on_finish=on_finish, blocker=blocker
)

record = st.session_state.get(lab_record.RECORD)
if fixed:
    challenge_view.lab_result(mode, record, submitted)
universal = st.session_state.get("exp.univ.current")  # a v computed or loaded on the Universal page this session
if (
    not fixed
    and universal is not None
    and record is not None
    and record.status != "running"
    and record.last_image is not None
):
    univ_for = widgets.model_title(universal[1].get("model", "?"))
    if st.checkbox(f"Add the universal perturbation (made for {univ_for}) to the result", key="lab.univ"):
        png = loaders.to_png(record.last_image)
        universal_view.show_applied(
            record.model_name, universal_view.applied_photo(record.model_name, None, png, universal[0])
        )
