"""The Universal perturbation page's glue: cached image sets and perturbations, the live view of a run (amplified v,
fooling-ratio curves), the held-out grid, before/after on one photo, the cross-model heatmap, save and load.

The tensor work is experiments.universal.universal's; here everything is numpy, PNG bytes and plotly dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from attacks import AttackError
from experiments.universal import universal
from images import load_image
from models import IMAGENET_CATEGORIES, OFFLINE_MODELS
from ui import figures, loaders, widgets

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "universal"
#: The shipped perturbation's held-out photos (copied from ../shared/photos/imagen by scripts/make_universal.py):
#: the page's status, its grid and its cross-model table are all measured on these, by universal.evaluate.
HELDOUT_SET = str(SHIPPED_DIR / "heldout")
ORIGINS = {"shipped": "shipped with the app", "run": "from your run", "loaded": "loaded from a file"}


# --------------------------------------------------------------------------------------------- data, cached


def clamp(key: str, low: int, high: int, default: int) -> None:
    """Keep a number input's Session State value inside a range that depends on other settings (or set it)."""
    st.session_state[key] = min(high, max(low, st.session_state.get(key, default)))


@st.cache_resource(max_entries=4, show_spinner="Reading the images…")
def image_set(name: str) -> tuple[list[str], list[Any]]:
    """(names, photos) of "samples" or a folder; raises AttackError for a missing or empty folder. A resource (not
    copied per call): the photos are only read."""
    return universal.load_image_set(name)


@st.cache_data(max_entries=8, show_spinner=False)
def shipped(model_name: str) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The precomputed L-inf xi=10 perturbation for a model, if one ships (data/universal/), as (v, meta)."""
    path = SHIPPED_DIR / f"{model_name}_linf10.npy"
    if not path.exists():
        return None
    v, meta = universal.load_perturbation(path)
    meta = {"images": "samples", **meta}
    if "shipped_heldout" in meta:  # the held-out photos that ship beside it: what the page can measure it on
        meta |= {"images": HELDOUT_SET, "heldout_images": meta["shipped_heldout"]["files"]}
    return v.numpy(), meta


@st.cache_data(max_entries=64, show_spinner="Adding the perturbation…")
def applied(model_name: str, set_name: str, names: tuple[str, ...], v: np.ndarray) -> list[universal.Applied]:
    """Photos of an image set (by name) with and without v, classified by the model."""
    all_names, photos = image_set(set_name)
    chosen = [photos[all_names.index(n)] for n in names if n in all_names]
    return universal.apply_to_photos(loaders.get_model(model_name), chosen, v)


@st.cache_data(max_entries=32, show_spinner="Adding the perturbation…")
def applied_photo(model_name: str, sample_id: str | None, data: bytes | None, v: np.ndarray) -> universal.Applied:
    photo = load_image(sample_id if data is None else data)
    return universal.apply_to_photos(loaders.get_model(model_name), [photo], v)[0]


def table_perturbations() -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """The cross-model table's rows: each offline model's shipped v (scripts/make_universal.py --model M, all on the
    same seeded split of the 999 photos, so one held-out set measures them all)."""
    rows = {m: shipped(m) for m in OFFLINE_MODELS}
    return {m: row for m, row in rows.items() if row is not None}


def _chosen(set_name: str, held: tuple[str, ...]) -> list[Any]:
    names, photos = image_set(set_name)
    return [photos[names.index(n)] for n in held if n in names]


@st.cache_data(max_entries=16, show_spinner="Evaluating every perturbation on every model…")
def cross_table(
    rows: tuple[str, ...], vs: tuple[np.ndarray, ...], columns: tuple[str, ...], held: tuple[str, ...], set_name: str
) -> universal.CrossModelTable:
    models = [loaders.get_model(c) for c in columns]
    return universal.cross_model_table(models, dict(zip(rows, vs, strict=True)), _chosen(set_name, held))


@st.cache_data(max_entries=32, show_spinner="Measuring it on the held-out photos…")
def heldout_ratios(model_name: str, v: np.ndarray, set_name: str, held: tuple[str, ...]) -> tuple[float, float, int]:
    """(fooling ratio of v, of the same-L-inf sign-noise control, image count) on the held-out photos, by
    universal.evaluate: the same function and photos as the cross-model table, so the two cannot disagree."""
    model, photos = loaders.get_model(model_name), _chosen(set_name, held)
    xi = float(np.abs(v).max()) * 255.0
    noise = universal.sign_noise(v.shape, xi, NOISE_SEED)  # (3, H, W)
    return universal.evaluate(model, photos, v), universal.evaluate(model, photos, noise), len(photos)


NOISE_SEED = 1  # the control's seed, as in scripts/make_universal.py


def shipped_status(model_name: str, v: np.ndarray, meta: dict[str, Any], origin: str) -> str:
    """The status line of a v that is not being built: its sidecar's held-out figures (with split sizes) and the
    same figures measured now on the held-out photos at hand, each beside the random-noise control."""
    head = f"**v for {widgets.model_title(meta.get('model', '?'))}, {ORIGINS[origin]}**"
    parts = []
    if meta.get("noise_heldout_fooling") is not None and meta.get("split"):
        split = meta["split"]
        parts.append(
            f"held-out fooling ratio **{meta['heldout_fooling']:.0%}** of {split['n_heldout']} unseen photos vs "
            f"**{meta['noise_heldout_fooling']:.0%}** for random ±ξ noise (trained on {split['n_train']}, "
            f"seed {split['seed']}; train {meta['train_fooling']:.0%})"
        )
    held = tuple(meta.get("heldout_images", ()))
    if held and meta.get("model") == model_name:
        ratio, noise, n = heldout_ratios(model_name, v, meta.get("images", "samples"), held)
        parts.append(f"measured here on {n} of them: **{ratio:.0%}** vs noise {noise:.0%}")
    elif meta.get("heldout_fooling") is not None and not parts:
        parts.append(f"held-out fooling ratio {meta['heldout_fooling']:.0%} on {meta.get('n_heldout')} images")
    return head + (": " + " · ".join(parts) if parts else "")


# --------------------------------------------------------------------------------------------- a run


def recorded(work: Iterator[universal.UniversalProgress], store: dict[str, Any], meta: dict[str, Any]) -> Iterator:
    """Keep the latest v and one (pass, training, held-out) point per pass in the store, so Stop keeps them."""
    store["history"] = [(0, 0.0, 0.0)]
    for p in work:
        store["v"], store["last"] = p.v.numpy(), p
        store["meta"] = {**p.to_json(meta["model"]), **meta}
        store["meta"]["heldout_images"] = [meta["names"][i] for i in p.heldout_ids]
        store["meta"]["train_images"] = [meta["names"][i] for i in p.train_ids]
        del store["meta"]["names"]
        if not p.last_images:
            store["history"].append((p.pass_index, p.train_fooling, p.heldout_fooling or 0.0))
        store["stopped"] = f"Stopped in pass {p.pass_index}: the perturbation reached so far is kept."
        yield p


def status(p: universal.UniversalProgress, passes: int) -> str:
    held = "–" if p.heldout_fooling is None else f"{p.heldout_fooling:.0%}"
    return (
        f"**Pass {p.pass_index or 1} of {passes}** · {p.visited} training images visited · fooling ratio: training "
        f"**{p.train_fooling:.0%}** of {p.n_train}, held-out **{held}** of {p.n_heldout} · {p.seconds:.0f} s"
    )


def show_perturbation(slot: Any, v: np.ndarray, caption: str) -> None:
    image, gain = universal.amplified(v)
    widgets.show_image(slot, widgets.png(image), f"{caption} · amplified ×{gain:.0f} (grey = 0)")


def curves(slot: Any, history: list[tuple[int, float, float]]) -> None:
    series = {"training": [h[1] for h in history], "held-out": [h[2] for h in history]}
    fig = figures.lines(
        [h[0] for h in history], series, title="Fooling ratio", x_title="pass", y_title="", categorical_x=True
    )
    widgets.chart(slot, fig)


def painter(slots: dict[str, Any], store: dict[str, Any], passes: int):
    def paint(p: universal.UniversalProgress) -> None:
        slots["status"].markdown(status(p, passes))
        slots["bar"].progress(min(1.0, p.pass_index / passes), text=f"pass {p.pass_index} of at most {passes}")
        show_perturbation(slots["v"], store["v"], "v so far")
        curves(slots["curve"], store["history"])

    return paint


# --------------------------------------------------------------------------------------------- results


def label(index: int) -> str:
    return widgets.class_name(index)


def show_grid(model_name: str, v: np.ndarray, meta: dict[str, Any], limit: int = 8) -> None:
    """Held-out images of v's image set with the model's label before -> after (✔: changed)."""
    held = tuple(meta.get("heldout_images", ()))[:limit]
    if not held:
        st.caption("No held-out images to show.")
        return
    try:
        rows = applied(model_name, meta.get("images", "samples"), held, v)
    except AttackError as err:
        widgets.error(err)
        return
    changed = sum(a.fooled for a in rows)
    st.markdown(f"**Held-out images on {widgets.model_title(model_name)}: {changed} of {len(rows)} change label**")
    cols = st.columns(4, gap="small")
    for i, a in enumerate(rows):
        before, after = int(a.probs_clean.argmax()), int(a.probs_perturbed.argmax())
        mark = "✔ " if a.fooled else ""
        widgets.show_image(cols[i % 4], a.perturbed, f"{mark}{label(before)} → {label(after)}")


def show_applied(model_name: str, a: universal.Applied) -> None:
    """Before and after, each an image beside its top-5 bars."""
    before, after = int(a.probs_clean.argmax()), int(a.probs_perturbed.argmax())
    rows = (
        (a.clean, a.probs_clean, f"Before: {label(before)}", None),
        (a.perturbed, a.probs_perturbed, f"After: {label(after)}{' ✔ fooled' if a.fooled else ''}", after),
    )
    for image, probs, caption, target in rows:
        left, right = st.columns([1, 1.6], gap="small", vertical_alignment="center")
        widgets.show_image(left, image, caption)
        title = caption.split(":")[0] + f" ({widgets.model_title(model_name)})"
        target = target if a.fooled else None
        widgets.chart(
            right,
            figures.bars(
                probs,
                IMAGENET_CATEGORIES,
                source=before,
                target=target,
                title=title,
                n_rows=5,
                pin_names=("before", "after"),  # v aims at no class: the label it had, and the one it has now
            ),
        )


def show_table(usable: list[str]) -> None:
    rows = table_perturbations()
    first = shipped(OFFLINE_MODELS[0])
    held = tuple(first[1]["heldout_images"]) if first else ()
    if not rows or not held:
        return
    set_name = first[1].get("images", "samples")  # type: ignore[index]
    table = cross_table(tuple(rows), tuple(r[0] for r in rows.values()), tuple(usable), held, set_name)
    text = [[f"{r:.0%}" for r in row] for row in table.ratio]
    titles = [widgets.model_title(m) for m in table.rows], [widgets.model_title(m) for m in table.columns]
    fig = figures.heatmap(*titles, table.ratio, text, title="Fooling ratio of each shipped v (rows) on each model")
    fig["layout"]["yaxis"]["title"]["text"] = "perturbation of"
    widgets.chart(st, fig)
    st.caption(
        f"The perturbations shipped with the app (your run's is measured in the status line above), on the "
        f"{table.n_images} shipped held-out photos (never trained on), by the same function as the status "
        f"line; each model at its own size."
    )


# --------------------------------------------------------------------------------------------- save, load


def downloads(v: np.ndarray, meta: dict[str, Any], key: str) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, v.astype(np.float32))
    name = f"{meta.get('model', 'universal')}_universal"
    left, right = st.columns(2)
    left.download_button("Save v (.npy)", buf.getvalue(), f"{name}.npy", key=key + "npy", width="stretch")
    right.download_button("Its settings (.json)", json.dumps(meta, indent=2), f"{name}.json", key=key + "json")


def uploaded(key: str, disabled: bool) -> tuple[np.ndarray, dict[str, Any]] | None:
    """A .npy from the file uploader, checked: None with one st.error line when it is not a perturbation."""
    upload = st.file_uploader("Load a saved perturbation (.npy)", key=key, disabled=disabled, max_upload_size=50)
    if upload is None:
        return None
    try:
        v = universal.read_perturbation(upload.getvalue(), upload.name)
    except AttackError as err:
        widgets.error(f"this file cannot be used: {err}")  # not the file's name first: error() capitalises it
        return None
    return v, {"model": "?", "file": upload.name}
