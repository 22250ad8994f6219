"""How it works: three explainers a class can follow in five minutes each.

Widgets -> experiments.explainers.view (cached computations from experiments.explainers, figures from ui.figures, the
live jobs' work, run by ui.run). Seed 001's linear argument, seed 003's decision boundary, a digits network.
"""

from __future__ import annotations

import streamlit as st

from experiments.explainers import view as explainers_view
from ui import run
from ui.router import through_router

through_router()

K = "how."
GROW, TRAIN = K + "grow.", K + "train."  # the two live jobs' prefixes: Run pins the settings under each
for _key, _value in ((GROW + "digit", 7), (GROW + "seed", 0), (TRAIN + "epochs", explainers_view.LIVE_EPOCHS)):
    st.session_state.setdefault(_key, _value)  # never value=: Run's on_click re-assigns the settings
st.session_state.setdefault(TRAIN + "eps", explainers_view.ROBUST_EPS)
grow_job, train_job = run.job(GROW + "job"), run.job(TRAIN + "job")
busy = grow_job.busy or train_job.busy

st.title("How it works")
st.caption("Three short experiments on why networks are so easily fooled. Each tab stands on its own.")
linear, boundary, digits = st.tabs(["1 · Many tiny changes", "2 · Crossing a boundary", "3 · A digits network"])

with linear:
    st.markdown("A logistic regression $p = \\sigma(W\\cdot x)$ on 10 inputs: why are deep networks so easily fooled?")
    nudge = st.slider("Nudge every input along sign(W) by", 0.0, 1.0, 0.5, 0.05, key=K + "nudge")
    r, fig = explainers_view.logistic(nudge)
    a, b, c = st.columns(3)
    a.metric("p(class 1) before", f"{r.p_before:.4f}")
    b.metric("p(class 1) after", f"{r.p_after:.2f}", f"{r.p_after - r.p_before:+.2f}")
    c.metric("score W·x", f"{r.score_after:+.1f}", f"{r.score_after - r.score_before:+.1f}")
    st.plotly_chart(fig, key=K + "bars")
    st.markdown(
        f"Each input moves by only ±{nudge:g}, but every move pushes the score the same way: together "
        f"{r.contributions.sum():+.1f}, enough to cross 0 where p = 0.5."
    )
    st.subheader("The same sum at image scale")
    left, right = st.columns([1, 2], gap="large")
    dims = left.select_slider(
        "Dimensions n",
        [10, 100, 1_000, 10_000, 50_176, 150_528],
        150_528,
        key=K + "dims",
        format_func=lambda n: f"{n:,}" + (" (224×224×3)" if n == 150_528 else ""),
    )
    eps = left.slider("Change per pixel (1/255 units)", 0.25, 8.0, 1.0, 0.25, key=K + "eps")
    here, fig = explainers_view.scale(eps, dims)
    left.metric("change of each pixel", f"{here.eps:.4f}", help="invisible: one step of the 8-bit grid")
    left.metric("score change along sign(w)", f"{here.aligned_change:,.1f}")
    left.metric("score change, random signs", f"{here.random_change:,.2f}")
    right.plotly_chart(fig, key=K + "scale")
    st.caption("Weights drawn from N(0, 1). A network is not linear, but locally it is close; see below.")
    if st.toggle("Measure it on EfficientNet-Lite0 (Chelsea the cat)", key=K + "lite0"):
        st.dataframe(explainers_view.first_order_rows("efficientnet_lite0", "chelsea"), hide_index=True)
        st.caption(
            "One sign step of the top class's logit gradient. The linear prediction grad·delta holds for tiny steps; "
            "at 1/255 the network bends, yet the logit still moves by whole units."
        )

with boundary:
    st.markdown(
        "A small network on two features. Pick a start (or click the chart); the attack walks to the other class."
    )
    left, right = st.columns([1, 2.4], gap="large")
    for key, value in ((K + "x", 0.25), (K + "y", 1.0)):
        st.session_state.setdefault(key, value)
    sx = left.slider("Start: feature 1", *explainers_view.START_X, step=0.05, key=K + "x")
    sy = left.slider("Start: feature 2", *explainers_view.START_Y, step=0.05, key=K + "y")
    norm = left.radio(
        "Budget",
        ("l2", "linf"),
        format_func={"l2": "L2 (circle)", "linf": "L-inf (square)"}.get,
        key=K + "norm",
        horizontal=True,
    )
    budget = left.slider("Budget radius ε", 0.1, 2.0, 1.0, 0.05, key=K + "budget")
    steps = left.slider("Steps", 2, 100, 40, key=K + "steps")
    a = explainers_view.boundary_attack((sx, sy), norm, budget, steps)
    upto = left.slider("Show steps up to", 0, len(a.path) - 1, len(a.path) - 1, key=K + f"upto{len(a.path)}")
    right.plotly_chart(
        explainers_view.boundary_chart(a, upto),
        key=K + "chart",
        on_select=lambda: explainers_view.pick_start(K + "chart", K + "x", K + "y"),
        selection_mode="points",
        config={"displayModeBar": False},
    )
    if a.crossed_at is None:
        left.warning(f"The iterated attack did not reach class {a.target} within ε; try a larger budget.")
    else:
        left.success(f"Iterated: class {a.target} after {a.crossed_at} steps (p = {a.end.p_target:.2f} at the end).")
    verdict = "crosses" if a.straight_crossed else "does not cross"
    left.info(
        f"One straight step of the same length ({a.straight_length:.2f}) along the first gradient {verdict}: "
        f"p(class {a.target}) = {a.straight.p_target:.2f}. The gradient is not stationary."
    )

with digits:
    command, recorded = explainers_view.recorded_accuracy()
    st.markdown(
        f"scikit-learn's 8×8 digits and a tiny CNN trained in seconds by `{command}`: "
        f"**{explainers_view.held_out_accuracy('standard'):.1%}** test accuracy (recomputed; recorded {recorded:.1%})."
    )
    st.subheader("White noise the network calls a digit")
    c1, c2, c3 = st.columns(3)
    digit = c1.selectbox("Digit", range(10), key=GROW + "digit", disabled=busy)
    seed = int(c2.number_input("Noise seed", 0, explainers_view.MAX_NOISE_SEED, key=GROW + "seed", disabled=busy))
    retrained = c3.toggle("Retrained with a 'not a digit' class", key=GROW + "retrained", disabled=busy)
    net = explainers_view.fooling_target(retrained)
    run.buttons(grow_job, prefix=GROW, ready=not train_job.busy, stop_help="Ends the run; the image reached stays.")
    slots = explainers_view.fooling_slots()
    run.drive(
        grow_job,
        lambda: explainers_view.fooling_work(grow_job, net, digit, seed),
        run.Draw(lambda frame: explainers_view.paint_fooling(slots, frame, digit, live=True)),
    )
    explainers_view.show_fooling(slots, grow_job)
    run.show_notes(grow_job)

    st.subheader("Adversarial training")
    st.plotly_chart(explainers_view.curves_figure(train_job), key=K + "curves")
    c1, c2 = st.columns(2)
    index = int(c1.number_input("Test digit #", 0, explainers_view.TEST_DIGITS - 1, 0, key=K + "index"))
    explainers_view.side_by_side(index, c2.slider("PGD ε", 0.0, 0.3, 0.2, 0.05, key=K + "attack_eps"))
    st.markdown(
        f"**Train it yourself** (PGD examples in every batch, a few seconds an epoch on one CPU core; the committed "
        f"robust network had {explainers_view.ROBUST_EPOCHS} epochs)."
    )
    c1, c2, c3 = st.columns(3)
    epochs = c1.slider("Epochs", 1, 60, key=TRAIN + "epochs", disabled=busy)
    train_eps = c2.slider("Training ε", 0.0, 0.3, step=0.05, key=TRAIN + "eps", disabled=busy)
    train_seed = int(c3.number_input("Seed", 0, 9999, key=TRAIN + "seed", disabled=busy))
    run.buttons(train_job, prefix=TRAIN, ready=not grow_job.busy, stop_help="Ends the training; the network stays.")
    bar = st.empty()
    run.drive(
        train_job,
        lambda: explainers_view.training_work(train_job, epochs, train_eps, train_seed),
        run.Draw(lambda done: bar.progress(done[0], text=done[1])),
    )
    run.show_notes(train_job)
    explainers_view.show_training(train_job)
