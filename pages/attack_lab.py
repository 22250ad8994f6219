"""Attack Lab: pick an image, a model and a target class, press Run, and watch the classifier being fooled.

Thin on purpose: widgets (ui.pickers) -> settings (ui.state, mirrored in the URL) -> the run (ui.live).
"""

import streamlit as st

from ui import live, pickers
from ui import state as S

S.init_state()
running = live.busy()

st.title("Attack Lab")
st.caption(
    "An invisible change of a few grey levels makes a classifier see whatever you like. "
    "Pick an image, a model and a target class, press **Run**, and watch it happen."
)
for message in S.url_errors():
    st.error(f"{message[:1].upper()}{message[1:]}.")

with st.expander(pickers.setup_summary(), expanded=True, key=S.SETUP_OPEN, on_change="rerun"):
    col_image, col_seen, col_goal, col_attack = st.columns([1.35, 1, 1, 1], gap="medium")
    with col_image:
        st.markdown("**1 · Image**")
        image = pickers.image_picker(disabled=running)
    with col_goal:
        st.markdown("**2 · Model and target**")
        model_name = pickers.model_picker(disabled=running)
    with col_seen:
        seen = pickers.model_view(model_name, image)
    with col_goal:
        target, target_ok = pickers.target_picker(seen, disabled=running)
    with col_attack:
        st.markdown("**3 · Attack**")
        choice = pickers.attack_picker(target, disabled=running)
ready = seen is not None and target_ok and choice.attack is not None

query = S.settings_query(
    image=image.sample_id if image is not None else None,
    model=st.session_state[S.MODEL],
    target=target,
    attack=choice.name,
    params=choice.params,
    confidence=choice.confidence,
)
S.write_url(query)

view = live.LiveView(status=live.run_bar(ready=ready, running=running))
record = live.start_or_resume(view, seen=seen, image=image, target=target, choice=choice, ready=ready, query=query)
if record is None:
    view.draw_idle(seen, target, ready=ready)
else:
    view.show_result(record)
