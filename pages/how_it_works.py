"""How it works: three explainers a class can follow in five minutes each (issue 11).

Thin page: widgets -> ui.explainers_view (cached computations from experiments.explainers, Plotly dicts, the live
loop). Seed 001's linear argument, seed 003's decision-boundary picture, and a digits network trained in seconds.
"""

from __future__ import annotations

import streamlit as st

from ui import explainers_view as E

K = "how."
st.title("How it works")
st.caption("Three short experiments on why networks are so easily fooled. Each tab stands on its own.")
linear, boundary, digits = st.tabs(["1 · Many tiny changes", "2 · Crossing a boundary", "3 · A digits network"])

with linear:
    st.markdown("A logistic regression $p = \\sigma(W\\cdot x)$ on 10 inputs (seed 001's worked example).")
    nudge = st.slider("Nudge every input along sign(W) by", 0.0, 1.0, 0.5, 0.05, key=K + "nudge")
    r, fig = E.logistic(nudge)
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
    here, fig = E.scale(eps, dims)
    left.metric("change of each pixel", f"{here.eps:.4f}", help="invisible: one step of the 8-bit grid")
    left.metric("score change along sign(w)", f"{here.aligned_change:,.1f}")
    left.metric("score change, random signs", f"{here.random_change:,.2f}")
    right.plotly_chart(fig, key=K + "scale")
    st.caption("Weights drawn from N(0, 1). A network is not linear, but locally it is close; see below.")
    if st.toggle("Measure it on EfficientNet-Lite0 (Chelsea the cat)", key=K + "lite0"):
        st.dataframe(E.first_order_rows("efficientnet_lite0", "chelsea", (0.05, 0.25, 0.5, 1.0, 2.0)), hide_index=True)
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
    sx = left.slider("Start: feature 1", *E.START_X, step=0.05, key=K + "x")
    sy = left.slider("Start: feature 2", *E.START_Y, step=0.05, key=K + "y")
    norm = left.radio(
        "Budget",
        ("l2", "linf"),
        format_func={"l2": "L2 (circle)", "linf": "L-inf (square)"}.get,
        key=K + "norm",
        horizontal=True,
    )
    budget = left.slider("Budget radius ε", 0.1, 2.0, 1.0, 0.05, key=K + "budget")
    steps = left.slider("Steps", 2, 100, 40, key=K + "steps")
    a = E.boundary_attack((sx, sy), norm, budget, steps)
    upto = left.slider("Show steps up to", 0, len(a.path) - 1, len(a.path) - 1, key=K + f"upto{len(a.path)}")
    right.plotly_chart(
        E.boundary_figure(a, upto),
        key=K + "chart",
        on_select=lambda: E.pick_start(K + "chart", K + "x", K + "y"),
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
    std, rob = E.digits_net("standard"), E.digits_net("robust")
    info = E.D.committed_metrics()
    st.markdown(
        f"scikit-learn's 8×8 digits and a tiny CNN trained in seconds by `{info['standard']['command']}`: "
        f"**{E.test_accuracy(std):.1%}** test accuracy (recomputed; recorded {info['standard']['test_accuracy']:.1%})."
    )
    st.subheader("White noise the network calls a digit")
    c1, c2, c3 = st.columns(3)
    digit = c1.selectbox("Digit", range(10), index=7, key=K + "digit")
    seed = int(c2.number_input("Noise seed", 0, E.MAX_NOISE_SEED, 0, key=K + "seed"))
    retrained = c3.toggle("Retrained with a 'not a digit' class", key=K + "retrained")
    net = E.retrained_net()[0] if retrained else std
    if retrained:
        st.caption(
            f"The retrained network rejects {E.retrained_net()[1].mean():.0%} of the old fooling images; "
            "new ones, grown against it, still fool it (seed 001: Nguyen et al. on MNIST)."
        )
    grow = st.button("Grow from noise", key=K + "grow", type="primary")
    st.button("Stop", key=K + "stop_grow")
    image_slot, bars_slot = st.columns(2)
    image_slot, bars_slot = image_slot.empty(), bars_slot.empty()

    def draw_fool(s: dict) -> None:
        p = float(s["probs"][digit])
        E.V.chart(image_slot, E.digit_figure(s["image"], f"step {s['step']}: p({digit}) = {p:.4%}"))
        E.V.chart(bars_slot, E.class_bars(s["probs"], digit, "the network's probabilities"))

    if grow:
        E.run_live(K + "fool", E.fooling_steps(net, digit, seed), draw_fool)
    elif (kept := st.session_state.get(K + "fool", {}).get("last")) is not None:
        draw_fool(kept)

    st.subheader("Adversarial training")
    curves = {
        "standard": E.committed_curve("standard"),
        f"robust (PGD ε={E.D.ROBUST['eps']:g})": E.committed_curve("robust"),
    }
    if (trained := E.trained_curve(K + "train")) is not None:
        curves["trained just now"] = trained
    st.plotly_chart(E.curves_figure(curves), key=K + "curves")
    c1, c2 = st.columns(2)
    index = int(c1.number_input("Test digit #", 0, 449, 0, key=K + "index"))
    attack_eps = c2.slider("PGD ε", 0.0, 0.3, 0.2, 0.05, key=K + "attack_eps")
    for col, (name, model) in zip(st.columns(2), (("standard", std), ("robust", rob)), strict=True):
        d = E.D.attack_digit(model, index, attack_eps)
        guess = int(d.probs_after.argmax())
        col.plotly_chart(
            E.digit_figure(d.adversarial, f"{name}: a {d.label} seen as {guess} ({d.probs_after[guess]:.0%})"),
            key=K + name,
        )
    st.markdown("**Train it yourself** (PGD examples in every batch; about half a minute on one CPU core).")
    c1, c2, c3 = st.columns(3)
    epochs = c1.slider("Epochs", 1, 60, E.D.ROBUST["epochs"], key=K + "epochs")
    train_eps = c2.slider("Training ε", 0.0, 0.3, E.D.ROBUST["eps"], 0.05, key=K + "train_eps")
    train_seed = int(c3.number_input("Seed", 0, 9999, 0, key=K + "train_seed"))
    if st.button("Train", key=K + "train_go", type="primary"):
        st.button("Stop (keeps the network as it is)", key=K + "stop_train")
        E.run_live(K + "train", E.training_steps(epochs, train_eps, train_seed), lambda s: None)
        st.rerun()
