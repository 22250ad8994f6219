"""Defenses and detection: what helps, what only seems to, and telling adversarial images apart.

Widgets -> experiments.defenses: defenses.evaluate_defenses (run by ui.run; Stop keeps finished rows), demo (one image
three ways; "Spot the adversarial"), detection (seed 004 sec. 4's SVM, feature squeezing), through its view.
"""

from __future__ import annotations

import streamlit as st

from attacks import ATTACKS, AttackError, make_attack
from experiments.defenses import view
from experiments.defenses.defenses import DEFENSES
from models import class_index
from ui import loaders, run, widgets
from ui.pickers import param_input
from ui.router import through_router

through_router()

K = "exp.def."
JOB = K + "job"
BUTTONS = [K + b for b in ("three", "svm", "squeeze", "deal", "reveal")]  # not settings: Run must not re-assign them
for _name, _value in {"defenses": ["jpeg", "median", "bits"], "images": 8, "conf": 0.0, "splits": 10}.items():
    st.session_state.setdefault(K + _name, _value)  # never value=: Run's on_click re-assigns the settings
job = run.job(JOB)
running = job.busy
off = {"disabled": running}

st.title("Defenses and detection")
st.caption(
    "Put a transformation in front of the model (JPEG, smoothing, fewer colour bits, random resizing) or average "
    "several models. Does it stop the attack? Only until the attacker knows it is there. Then: can we at least tell "
    "an adversarial image apart?"
)
model = widgets.model_select("Model", K + "model", **off)
tabs = ["Defenses", "Detection: the paper's SVM", "Detection: feature squeezing", "Spot the adversarial"]
defend_tab, svm_tab, squeeze_tab, spot_tab = st.tabs(tabs)

with defend_tab:
    settings, results = st.columns([1, 2.3], gap="large")
    with settings:
        top = st.container()  # Run and its progress above the settings: on a 768-px screen, beside the figure
        names = st.multiselect(
            "Defenses", list(DEFENSES), key=K + "defenses", format_func=lambda d: DEFENSES[d].title, wrap=True, **off
        )
        chosen: dict[str, dict[str, float]] = {}
        for name in names:
            cls = DEFENSES[name]
            with st.expander(f"{cls.title}: parameters"):
                st.caption(cls.summary)
                chosen[name] = {p.name: param_input(p, f"{K}{name}.{p.name}", **off) for p in cls.params}
        attack = st.selectbox(
            "Attack", list(ATTACKS), key=K + "attack", format_func=lambda a: ATTACKS[a].title.split(" (")[0], **off
        )
        with st.expander("Attack parameters"):
            params = {p.name: param_input(p, f"{K}{attack}.{p.name}", **off) for p in ATTACKS[attack].params}
        n_images = st.slider("Labelled sample images", 2, 20, key=K + "images", **off)
        blackbox = st.checkbox("Also a black-box attacker", key=K + "blackbox", help=view.BLACKBOX_HELP, **off)
        try:
            make_attack(attack, **params)
        except AttackError as err:
            widgets.error(err)
            params = None
        ready = model is not None and bool(names) and params is not None
        with top:
            run.buttons(job, prefix=K, ready=ready, settings=None, other_buttons=BUTTONS)
            bar = st.empty()

    def start():
        assert model is not None and params is not None
        on_step = run.progress(job, run.Draw(lambda step: view.step_bar(bar, job.data, step), run.Throttle(0.5)))
        work = view.defense_work(model, chosen, attack, params, n_images, seed=0, on_step=on_step, blackbox=blackbox)
        return view.recorded(work, job.data)

    def paint(progress) -> None:
        bar.progress(progress.done / progress.total, text=f"{progress.stage} ({progress.done}/{progress.total})")
        view.show_report(live, progress.report)

    with results:
        live = st.empty()
        run.show_notes(job)
        shipped = view.shipped(model.name) if model is not None else None
        if job.data.get("report") is not None:
            view.show_report(live, job.data["report"])
        elif shipped is not None and not running:
            view.show_report(live, shipped[0], view.shipped_note(shipped[1]))
        elif not running:
            st.info("Press **Run** to evaluate the defenses on the labelled sample images.")
        st.caption(view.LESSON)

    st.subheader("One image, three attackers")
    one = st.columns([1, 2.3], gap="large")
    with one[0]:
        picked = widgets.image_select(K + "image", default="imagenet_06", **off)
        demo = st.selectbox("Defense", list(DEFENSES), key=K + "demo", format_func=lambda d: DEFENSES[d].title, **off)
        show = st.button("Attack it three ways", key=K + "three", disabled=running or picked is None or not ready)
    with one[1]:
        if (show or st.session_state.get(K + "shown")) and model is not None and picked is not None and params:
            st.session_state[K + "shown"] = True
            png = loaders.model_input_png(model.name, picked.sample_id, picked.data)
            p = tuple(sorted(chosen.get(demo, {}).items()))
            view.show_cases(view.three_cases(model.name, png, demo, p, attack, tuple(sorted(params.items()))))
        else:
            st.info("Pick an image and a defense, then **Attack it three ways**: bare, ignoring it, knowing it.")

with svm_tab:  # each detector its own tab: its button on the first screen, not under the other's result
    st.caption("Robinson & Graham 2015, sec. 4: true photos of the target against others relabelled to it.")
    cols = st.columns(3)
    with cols[0]:
        target = widgets.class_select("Target class", K + "target", class_index("jeep"), **off)
    confidence = cols[1].selectbox("Relabel until p(target) ≥", [0.0, 0.9], key=K + "conf", **off)
    splits = int(cols[2].number_input("Random splits", 1, 50, key=K + "splits", **off))
    if st.button("Run the SVM experiment", key=K + "svm", disabled=running or model is None):
        st.session_state[K + "svm_on"] = True
    if st.session_state.get(K + "svm_on") and model is not None:
        try:
            view.show_svm(view.svm_on_samples(model.name, target, float(confidence), splits))
        except AttackError as err:
            widgets.error(err)
with squeeze_tab:
    squeeze_how = "5-bit colour and a 2x2 median; score: the largest L1 distance between the probabilities on the image"
    st.caption(f"Xu et al. 2018: {squeeze_how} and its squeezed ones; flagged at 5% false positives on clean ones.")
    if st.button("Run feature squeezing", key=K + "squeeze", disabled=running or model is None):
        st.session_state[K + "squeeze_on"] = True
    if st.session_state.get(K + "squeeze_on") and model is not None:
        results_sq = view.squeeze_on_samples(model.name, 0)
        left, right = st.columns([1.2, 1])
        widgets.chart(left.empty(), view.roc_figure(results_sq))
        widgets.table(right, view.squeeze_table(results_sq))

with spot_tab:
    st.caption(
        "Some of these photos were attacked (relabelled, RMS at most 0.01), some not. Tick the ones you think were "
        "changed, then **Reveal**. The same seed deals the same grid; the seed is in the address, so share the link."
    )
    shared = st.query_params.get("seed", "")
    if K + "seed" not in st.session_state:
        st.session_state[K + "seed"] = int(shared) if shared.isdigit() else 0
    seed = int(st.number_input("Seed", 0, 100_000, key=K + "seed", **off))
    if st.button("Deal the grid", key=K + "deal", disabled=model is None) or shared.isdigit():
        st.session_state[K + "dealt"] = True
    if st.session_state.get(K + "dealt") and model is not None:
        st.query_params["seed"] = str(seed)
        revealed = st.session_state.get(K + "revealed") == seed
        view.show_grid(view.spot_grid(model.name, seed), f"{K}tick.{seed}.", revealed)
        if st.button("Reveal", key=K + "reveal", type="primary", disabled=revealed):
            st.session_state[K + "revealed"] = seed
            st.rerun()

# Outside the tabs: the run's watchdog (a fragment) must not live in a tab. It paints into the slots above.
run.drive(job, start, run.Draw(paint, run.Throttle(min_interval=0.5)))
