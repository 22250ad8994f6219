"""The Transfer page's results: the last run (images, verdict, one row per evaluated model) and the matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from attacks import ATTACKS, Step
from experiments.lab.steps import difference_image
from experiments.transfer.transfer import TransferResult
from images import ImageError
from models import IMAGENET_CATEGORIES, short_title
from ui import figures, widgets
from ui.pickers import param_input


def attack_settings(prefix: str, spec: dict[str, Any], *, disabled: bool) -> tuple[str, dict[str, float], bool]:
    """The attack of a preset (TRANSFER_PRESETS), or for "custom" the attack, its parameters and goal as widgets:
    (attack name, parameters, targeted)."""
    attack_name = spec["attack"] or st.selectbox(
        "Attack", list(ATTACKS), key=prefix + "attack", format_func=lambda a: ATTACKS[a].title, disabled=disabled
    )
    cls = ATTACKS[attack_name]
    params = dict(spec["params"])
    if spec["attack"] is None:
        for p in cls.params:
            params[p.name] = param_input(p, f"{prefix}{attack_name}.{p.name}", disabled=disabled)
    targeted = spec["targeted"]
    if targeted is None:
        options = [m for m, ok in ((True, cls.supports_targeted), (False, cls.supports_untargeted)) if ok]
        targeted = (
            st.radio(
                "Goal",
                options,
                key=prefix + "goal",
                format_func=lambda t: "toward a class" if t else "any other class (untargeted)",
                disabled=disabled,
            )
            is True
        )
    return attack_name, params, targeted


def target_allowed(sources: list[str], picked: widgets.PickedImage, target: int | None) -> bool:
    """Says which class the attacked model (or ensemble) sees now; False, with the reason, when the image is
    unusable or the target is that class."""
    try:
        source_class = widgets.attacked_class(sources, picked)
    except ImageError as err:
        widgets.error(f"this image cannot be used: {err}")
        return False
    who = "the ensemble" if len(sources) > 1 else "the attacked model"
    if target is not None and target == source_class:
        widgets.error(
            f"the target is the class {who} already sees in this image ({IMAGENET_CATEGORIES[target]}); "
            "pick another target"
        )
        return False
    st.caption(f"In the clean image (before any attack), {who} sees **{widgets.class_name(source_class)}**.")
    return True


def step_progress(bar: Any, data: dict[str, Any], step: Step) -> None:
    """The progress bar during a run: which part of how many, the step, and what the attacked model says now."""
    part, total = data["part"], data["part"].attack.total_steps()
    top = int(step.probs[0].argmax())
    bar.progress(
        min(1.0, step.index / max(total, 1)),
        text=f"{data['running']}{part.attack.title} on {' + '.join(map(short_title, part.sources))}: "
        f"step {step.index}/{total}: "
        f"the attacked model says {IMAGENET_CATEGORIES[top]} ({float(step.probs[0, top]):.0%})",
    )


def show_result(result: TransferResult) -> None:
    """The attacked image, the verdict on the attacked model(s) and one row per evaluated model."""
    o = result.outcome
    cols = st.columns(3, gap="small")
    cats = result.categories
    ensemble = len(result.source_models) > 1
    judge = "ensemble" if ensemble else "attacked model"
    widgets.show_image(cols[0], o.original, f"Original ({'ensemble: ' if ensemble else ''}{cats[o.source]})")
    attacked = " + ".join(map(short_title, result.source_models))
    says = f"{o.verdict.label} {o.verdict.probability:.0%}"
    widgets.show_image(cols[1], o.adversarial, f"Adversarial on {attacked}: {says}")
    widgets.show_image(
        cols[2],
        difference_image(np.asarray(o.original), np.asarray(o.adversarial), 10.0),
        "Difference ×10 around mid-grey",
    )
    goal = f"→ {cats[o.target]}" if o.target is not None else f"untargeted, away from {cats[o.source]}"
    verdict = "fooled" if o.success else "did NOT fool"
    st.markdown(
        f"The saved image {verdict} the {judge} ({goal}): RMS distortion **{o.verdict.rms_distortion:.4f}**, "
        f"largest change {o.verdict.max_change_255}/255, {o.iterations} steps."
    )
    if ensemble:
        st.caption(
            f"The attack was judged on the ensemble of {' + '.join(result.source_models)} (mean of their logits), "
            f"which sees **{cats[o.source]}** in the clean image. Each row below judges one model by its own clean "
            "label, so a member of the ensemble can count as not fooled."
        )
    targeted = o.target is not None
    flagged = [short_title(r.model) for r in result.rows if r.took_source_label]
    table = pd.DataFrame(
        [
            {
                "model": short_title(r.model) + (" (attacked)" if r.is_source else ""),
                "clean image": r.clean_label,
                "adversarial image": r.label,
                **({"p(target)": 100 * (r.p_target or 0.0)} if targeted else {}),
                "p(clean label)": 100 * r.p_clean_class,
                "fooled": r.fooled,
                **({"note": "= attacked model's clean label" if r.took_source_label else ""} if flagged else {}),
            }
            for r in result.rows
        ]
    )
    header = "fooled (= target)" if targeted else "fooled (≠ own clean)"
    fooled_help = f"Fooled means: {result.fooled_rule}."
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            # Narrow number columns and a short header, so "fooled" is not cut at 1366x768 (the grid is a canvas).
            "p(target)": st.column_config.NumberColumn(
                format="%.2f%%", width="small", help="The target's probability."
            ),
            "p(clean label)": st.column_config.NumberColumn(
                "p(clean)",
                format="%.2f%%",
                width="small",
                help="The adversarial image's probability of this model's class of the clean image.",
            ),
            "fooled": st.column_config.CheckboxColumn(header, width=118, help=fooled_help),  # the rule, whole
        },
    )
    st.caption(f"**Fooled** in each row: {result.fooled_rule}.")
    if flagged:
        st.warning(
            f"{', '.join(flagged)}: the new label is the attacked model's own label of the clean image "
            f"({cats[o.source]}). By the rule it changed its answer, but it now agrees with the attacked model, "
            "which a class may read as right rather than fooled."
        )


def show_matrix(history: list[dict[str, Any]]) -> None:
    """The source x evaluation heatmap of every run kept, or what it will show."""
    if not history:
        st.info("Each run adds a row to the matrix below: attacked model(s) × evaluated model.")
        return
    cols: list[str] = []
    for h in history:
        cols += [m for m in h["cells"] if m not in cols]
    values, text = [], []
    for h in history:
        cells = [h["cells"].get(c) for c in cols]
        values.append([None if c is None else float(c[0]) for c in cells])
        text.append(["" if c is None else ("✔ " if c[0] else "✘ ") + c[1][:18] for c in cells])
    widgets.chart(
        st.empty(),
        figures.heatmap(
            [h["row"] for h in history],
            [short_title(c) for c in cols],
            values,
            text,
            title="Fooled? (red) — the label each model sees",
        ),
    )
