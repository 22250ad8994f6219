"""Streamlit glue of the "How it works" page: cached computations from experiments.explainers (plain arguments,
plain results), the figures they feed (built in ui.figures), and the two live jobs' work and drawing, which
ui.run drives (grow a fooling digit from noise; adversarial training with a progress bar and Stop).

No tensor work here: experiments.explainers returns numpy arrays and numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import streamlit as st

from experiments.explainers import boundary, digits, linear
from experiments.explainers import figures as explainers_figures
from images import load_image
from ui import figures, loaders, widgets
from ui.run import Job

START_X, START_Y = (-1.5, 2.5), (-1.0, 1.5)  # the start sliders' ranges (step 0.05)
#: Noise seeds of the retraining set (1000 and 1001), outside the page's noise seeds (0..999): a fooling image grown
#: on the page never starts from noise the retrained network was shown.
REJECT_SEED = 1000
MAX_NOISE_SEED = 999
ROBUST_EPS, ROBUST_EPOCHS = float(digits.ROBUST["eps"]), int(digits.ROBUST["epochs"])
TEST_DIGITS = 450  # the test split's size: the "Test digit #" input's range
LIVE_EPOCHS = 10  # the live training's default: about half a minute on an idle core (the committed one had 30)
MEASURE_EPOCHS = 2  # the PGD curve of a network trained on the page costs about two epochs of training

# ------------------------------------------------------------------------------------------- 1. linear models


def logistic(nudge: float) -> tuple[linear.LogisticNudge, dict[str, Any]]:
    """Seed 001's example for one nudge size and its figure."""
    r = linear.logistic_nudge(nudge)
    return r, explainers_figures.contributions_figure(r.contributions, r.score_before)


def scale(eps_255: float, n_dims: int) -> tuple[linear.ScaleArgument, dict[str, Any]]:
    """The same sum at image scale: score change vs the number of dimensions, at a fixed per-pixel change."""
    curve = linear.scale_curve(eps_255)
    here = linear.scale_argument(n_dims, eps_255)
    series = {
        "aligned": [c.aligned_change for c in curve],
        "random": [c.random_change for c in curve],
        "pixel": [c.eps for c in curve],
    }
    fig = explainers_figures.scale_figure(
        [c.n_dims for c in curve], series, here=(n_dims, here.aligned_change), eps_255=eps_255
    )
    return here, fig


@st.cache_data(show_spinner="Measuring on EfficientNet-Lite0…")
def first_order_rows(
    model_name: str, sample: str, steps_255: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0, 2.0)
) -> list[dict[str, Any]]:
    """The model's top-class logit on a sample under sign steps of several sizes: linear prediction vs measured."""
    return linear.first_order_rows(loaders.get_model(model_name), load_image(sample), steps_255)


# ------------------------------------------------------------------------------------------- 2. decision boundary


@st.cache_resource(show_spinner="Training the two-moons network (a second)…")
def moons_net() -> boundary.MoonsNet:
    return boundary.trained_moons_net(0)


@st.cache_data(show_spinner=False)
def regions() -> boundary.Regions:
    return boundary.decision_regions(moons_net())


@st.cache_data(show_spinner=False)
def boundary_attack(start: tuple[float, float], norm: str, eps: float, steps: int) -> boundary.BoundaryAttack:
    return boundary.attack_path(moons_net(), start, norm=norm, eps=eps, steps=steps)


def boundary_chart(attack: boundary.BoundaryAttack, upto: int) -> dict[str, Any]:
    """The moons, the regions, the path up to step `upto`; clickable on the start sliders' 0.1 grid."""
    grid = np.meshgrid(np.arange(*START_X, 0.1).round(2), np.arange(*START_Y, 0.1).round(2))
    return explainers_figures.boundary_figure(
        regions(),
        boundary.moons(),
        attack,
        upto,
        ranges=(boundary.X_RANGE, boundary.Y_RANGE),
        click_grid=(grid[0], grid[1]),
    )


def pick_start(chart_key: str, x_key: str, y_key: str) -> None:
    """on_select of the boundary chart: the clicked point becomes the start (sets the two sliders, within range)."""
    points = st.session_state[chart_key].selection.points
    if points:
        for key, value, (low, high) in ((x_key, points[0]["x"], START_X), (y_key, points[0]["y"], START_Y)):
            st.session_state[key] = round(min(high, max(low, round(float(value) * 20) / 20)), 2)


# ------------------------------------------------------------------------------------------- 3. digits


@st.cache_resource(show_spinner="Loading the digits network…")
def digits_net(kind: str) -> digits.DigitsCNN:
    return digits.load_network(kind)


@st.cache_data(show_spinner=False)
def held_out_accuracy(kind: str) -> float:
    return digits.held_out_accuracy(digits_net(kind))


def recorded_accuracy() -> tuple[str, float]:
    """The command that made the committed standard network and the test accuracy it recorded."""
    info = digits.committed_metrics()["standard"]
    return info["command"], float(info["test_accuracy"])


@st.cache_resource(show_spinner="Retraining with a 'not a digit' class (fooling images + noise)…")
def retrained_net(seed: int = REJECT_SEED) -> tuple[digits.DigitsCNN, float]:
    """Nguyen et al.'s defense on the committed standard network, and the share of its old fooling images (and
    noise) the retrained network now rejects."""
    net, rejected = digits.retrained_with_rejects(digits_net("standard"), seed=seed)
    return net, float(rejected.mean())


def fooling_target(retrained: bool) -> digits.DigitsCNN:
    """The committed standard network, or (with a caption saying what it rejects) the one retrained against it."""
    if not retrained:
        return digits_net("standard")
    net, rejected = retrained_net()
    st.caption(
        f"The retrained network rejects {rejected:.0%} of the old fooling images (and noise); new ones, grown against "
        "it, still fool it (Nguyen et al. 2015 on MNIST)."
    )
    return net


def fooling_work(job: Job, net: digits.DigitsCNN, digit: int, seed: int) -> Iterator[digits.FoolingFrame]:
    """The grow job's work: every frame is kept in job.data (a Stop keeps the image reached)."""
    job.data["digit"] = digit
    for frame in digits.fooling_frames(net, digit, seed=seed):
        job.data["frame"] = frame
        job.data["stopped"] = f"Stopped at step {frame.step}: p({digit}) = {frame.probs[digit]:.4%}."
        yield frame


def fooling_slots() -> tuple[Any, Any, Any]:
    """Status line, image and probability bars."""
    status = st.empty()
    left, right = st.columns(2)
    return status, left.empty(), right.empty()


def paint_fooling(slots: tuple[Any, Any, Any], frame: digits.FoolingFrame, digit: int, *, live: bool) -> None:
    status, image, bars = slots
    p = float(frame.probs[digit])
    state = "reached" if frame.reached else "growing…" if live else "not reached"
    status.markdown(f"**Step {frame.step}** · p({digit}) = **{p:.4%}** · {state}")
    widgets.chart(image, explainers_figures.digit_image(frame.image, f"step {frame.step}: p({digit}) = {p:.4%}"))
    names = list(digits.DIGITS) + ([digits.REJECT] if len(frame.probs) == 11 else [])
    widgets.chart(bars, explainers_figures.class_bars(frame.probs, names, digit, "the network's probabilities"))


def show_fooling(slots: tuple[Any, Any, Any], job: Job) -> None:
    """After a run (or a Stop): the image reached, or the invitation to press Run."""
    if "frame" in job.data:
        paint_fooling(slots, job.data["frame"], job.data["digit"], live=False)
    else:
        slots[0].info("Press **Run** to grow a fooling image from white noise.")


def committed_curve(kind: str) -> list[tuple[float, float]]:
    """The committed network's accuracy under PGD as scripts/train_digits.py measured it (tests recompute it)."""
    recorded = digits.committed_metrics()[kind]["pgd_accuracy"]
    return [(float(e), float(a)) for e, a in recorded.items()]


def curves_figure(job: Job) -> dict[str, Any]:
    """The committed networks' accuracy curves, and the one the training job left (once it has ended)."""
    curves = {"standard": committed_curve("standard"), f"robust (PGD ε={ROBUST_EPS:g})": committed_curve("robust")}
    if not job.busy and job.data.get("curve"):
        curves["trained just now"] = job.data["curve"]
    eps = [e for e, _ in next(iter(curves.values()))]
    return figures.lines(
        eps,
        {k: [a for _, a in c] for k, c in curves.items()},
        title="Test accuracy under PGD (20 steps, L-inf)",
        x_title="epsilon ([0,1] pixels)",
        y_title="accuracy",
    )


@st.cache_data(show_spinner="Attacking the test digit…")
def attacked_digit(kind: str, index: int, eps: float) -> digits.DigitAttack:
    return digits.attack_digit(digits_net(kind), index, eps)


def side_by_side(index: int, eps: float) -> None:
    """The same PGD on the same test digit against the standard and the robust network."""
    for col, kind in zip(st.columns(2), ("standard", "robust"), strict=True):
        d = attacked_digit(kind, index, eps)
        guess = int(d.probs_after.argmax())
        title = f"{kind}: a {d.label} seen as {guess} ({d.probs_after[guess]:.0%})"
        col.plotly_chart(
            explainers_figures.digit_image(d.adversarial, title), key=f"how.{kind}", config={"displayModeBar": False}
        )


def training_work(job: Job, epochs: int, eps: float, seed: int) -> Iterator[tuple[float, str]]:
    """The train job's work, as (fraction done, text) for the progress bar: train (the network after every batch
    is kept in job.data), then measure its accuracy under PGD one epsilon at a time (each point kept as measured).
    A Stop keeps what finished: the network as it was, and the points of the curve measured so far."""
    total = epochs + MEASURE_EPOCHS  # measuring the curve costs about as much as two epochs of training
    for p in digits.train(epochs=epochs, eps=eps, seed=seed):
        job.data["net"] = p.net
        job.data["stopped"] = f"Stopped in epoch {p.epoch}/{p.epochs} after batch {p.batch}; the network is kept."
        yield (
            p.fraction * epochs / total,
            (
                f"Epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.batches}: loss {p.loss:.3f}, "
                f"batch accuracy {p.accuracy:.0%}, {p.elapsed:.0f} s"
            ),
        )
    net = digits.frozen(job.data["net"])
    curve: list[tuple[float, float]] = job.data.setdefault("curve", [])
    for i, e in enumerate(digits.EPS_GRID, 1):
        curve.append((e, digits.robust_accuracy(net, e)))
        job.data["stopped"] = f"Stopped while measuring: the curve has the {i} epsilons measured so far."
        yield (epochs + MEASURE_EPOCHS * i / len(digits.EPS_GRID)) / total, f"Measured ε = {e:g}: {curve[-1][1]:.0%}"


def show_training(job: Job) -> None:
    """After a training stopped before its curve: what the network it left reads of the test digits."""
    if not job.busy and "net" in job.data and not job.data.get("curve"):
        accuracy = digits.held_out_accuracy(job.data["net"])
        st.caption(
            f"When stopped, the network read {accuracy:.1%} of the test digits (no PGD curve: it is measured "
            "after the last epoch)."
        )
