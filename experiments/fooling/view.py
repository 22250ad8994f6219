"""The Fooling images page's live view: status line, image(s), probability bars and the target-probability curve,
drawn from a store (st.session_state) that keeps each run's history, so a Stop or a rerun shows what was reached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import streamlit as st

from experiments.fooling.synthesis import Progress
from models import IMAGENET_CATEGORIES
from ui import figures, widgets

UNITS = {"grow": "step", "evolve": "generation", "visualize": "step", "gallery": "step"}


def recorded(
    items: Iterator[tuple[str, Progress]], store: dict[str, Any], *, gallery_confidence: float | None = None
) -> Iterator[tuple[str, Progress]]:
    """Keep every Progress in the store as it comes (its history, the start image's own class, the latest one), so
    a Stop between two redraws still shows the step really reached; PNGs are only encoded when drawn. A gallery
    (`gallery_confidence` given) ends with a one-line summary."""
    for key, last in items:
        history: list[tuple[int, float, int]] = store.setdefault(key + ".history", [])
        if last.index == 0:
            # The start image's own class (other than the target): the blue "source" bar.
            order = last.probs.argsort(dim=1, descending=True)  # (N, K)
            store[key + ".source"] = [
                int(o[1] if o[0] == t else o[0]) for o, t in zip(order, last.targets, strict=True)
            ]
        history.append((last.index, float(last.target_probability[0]), last.queries))
        store[key + ".last"] = last
        if last.done and gallery_confidence is not None:
            store["summary"] = (
                f"{int(last.success.sum())} of {len(last.targets)} classes reached {gallery_confidence:.1%} after "
                f"{last.index} steps."
            )
        yield key, last


def caption(p: Progress, i: int, unit: str) -> str:
    t = int(p.targets[i])
    top = int(p.probs[i].argmax())
    label = "✔" if bool(p.success[i]) else ""
    return (
        f"{IMAGENET_CATEGORIES[t]}: p = {float(p.probs[i, t]):.1%} {label} · top: {IMAGENET_CATEGORIES[top]} "
        f"· {unit} {p.index}"
    )


def snapshot(p: Progress, unit: str) -> dict[str, Any]:
    """What the slots show of one Progress (PNG bytes and small numbers), kept in the store across reruns."""
    return {
        "png": [widgets.png(p.images[i : i + 1]) for i in range(len(p.targets))],
        "captions": [caption(p, i, unit) for i in range(len(p.targets))],
        "probs": p.probs.cpu().numpy(),
        "targets": p.targets.tolist(),
        "distortion": p.distortion.tolist(),
        "queries": p.queries,
        "index": p.index,
        "success": p.success.tolist(),
        "done": p.done,
    }


def draw(slots: dict[str, Any], store: dict[str, Any], key: str, unit: str, *, live: bool = False) -> None:
    """Redraw the slots from the store; outside a live loop a run that did not finish was stopped."""
    last: Progress | None = store.get(key + ".last")
    if not live and last is not None and store.get(key, {}).get("index") != last.index:
        store[key] = snapshot(last, unit)  # stopped between two redraws: show the step really reached
    data = store.get(key)
    if not data:
        return
    if "images" in slots:
        cols = slots["images"]
        for slot, image, caption in zip(cols, data["png"], data["captions"], strict=False):
            widgets.show_image(slot, image, caption)
    else:
        widgets.show_image(slots["image"], data["png"][0], data["captions"][0])
    if "bars" in slots:
        t = data["targets"][0]
        source = store.get(key + ".source", [None])[0]
        widgets.chart(
            slots["bars"],
            figures.bars(
                data["probs"][0],
                IMAGENET_CATEGORIES,
                source=source,
                target=t,
                title=f"Probabilities at {unit} {data['index']}",
            ),
        )
    if "curve" in slots:
        history = store.get(key + ".history", [])
        x_title = "queries" if unit == "generation" else "step"
        xs = [h[2] if unit == "generation" else h[0] for h in history]
        widgets.chart(
            slots["curve"],
            figures.lines(
                xs,
                {"p(target)": [h[1] for h in history]},
                title="Target probability",
                x_title=x_title,
                y_title="p(target)",
                log_y=True,
            ),
        )
    if "status" in slots:
        rms = data["distortion"][0]
        ok = "reached" if data["success"][0] else ("not reached" if data["done"] else "running…" if live else "stopped")
        extra = f" · {data['queries']} queries" if unit == "generation" else ""
        slots["status"].markdown(
            f"**{unit.capitalize()} {data['index']}** · RMS distortion from the start image **{rms:.4f}**{extra} · {ok}"
        )


def single_slots(container: Any, with_curve: bool = True, stacked: bool = False) -> dict[str, Any]:
    """Status line, image and bars (side by side, or stacked in a narrow column), and the probability curve."""
    with container:
        status = st.empty()
        if stacked:
            slots = {"status": status, "image": st.empty(), "bars": st.empty()}
        else:
            left, right = st.columns([1, 1.2], gap="medium")
            slots = {"status": status, "image": left.empty(), "bars": right.empty()}
        if with_curve:
            slots["curve"] = st.empty()
    return slots


CAPTIONS = {
    "grow": "White box: the paper's relabelling step (the sign of the gradient, 1/255 per pixel) from the start image "
    "until the saved 8-bit image reaches the confidence. Robinson & Graham needed an RMS distortion of about 0.03 "
    "from Gaussian noise.",
    "evolve": "Black box: every image is rounded to 8 bits and classified without gradients; only p(target) is "
    "used. A natural evolution strategy estimates which way to change the genes from the scores of random mutations.",
    "visualize": "Left: plain gradient descent to 99% (a fooling image). Right: gradient ascent on the class score "
    "with jitter, blur and total variation, which keep only what survives small shifts and smoothing. Same model, "
    "same class - the regularisers are the whole difference.",
}
INVITATIONS = {
    "grow": "Press **Run** to grow the image.",
    "evolve": "Press **Run** to grow the image.",
    "visualize": "Press **Run** to make both images.",
    "gallery": "Press **Run** to grow one fooling image per class.",
}


def layout(mode: str, n_targets: int) -> dict[str, dict[str, Any]]:
    """The placeholders of one mode, by the work's slot name ("main", "fool", "vis"); a gallery's status line is
    under "summary"."""
    if mode in CAPTIONS and mode != "visualize":
        slots = single_slots(st.container())
        st.caption(CAPTIONS[mode])
        return {"main": slots}
    if mode == "visualize":
        st.caption(CAPTIONS[mode])
        left, right = st.columns(2, gap="large")
        left.markdown("##### Fooling image (no regulariser)")
        right.markdown("##### Class visualisation (regularised)")
        return {
            "fool": single_slots(left, with_curve=False, stacked=True),
            "vis": single_slots(right, with_curve=False, stacked=True),
        }
    status = st.empty()
    cells = []
    for _ in range(0, max(n_targets, 1), 3):
        cells += [c.empty() for c in st.columns(3, gap="small")]
    return {"main": {"images": cells}, "summary": {"status": status}}


def painter(slots: dict[str, dict[str, Any]], store: dict[str, Any], unit: str) -> Any:
    """The live redraw of one (slot, Progress) item: encode its snapshot, redraw that slot."""

    def paint(item: tuple[str, Progress]) -> None:
        key, progress = item
        store[key] = snapshot(progress, unit)
        draw(slots[key], store, key, unit, live=True)

    return paint


def show(mode: str, slots: dict[str, dict[str, Any]], store: dict[str, Any]) -> None:
    """After a run (or a Stop): every slot from the store, or the invitation to press Run."""
    unit = UNITS[mode]
    drawn = False
    for key in ("main", "fool", "vis"):
        data = store.get(key)
        if key in slots and data and len(data["png"]) <= len(slots[key].get("images", [None])):
            draw(slots[key], store, key, unit)
            drawn = True
    if "summary" in slots and drawn:
        slots["summary"]["status"].markdown(store.get("summary", ""))
    if not drawn:
        st.info(INVITATIONS[mode])
