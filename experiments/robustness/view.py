"""The Robustness page's results: plain and EOT images with their verdicts, how often each transformation leaves
them fooled, and the curve, images and table per transformation."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from attacks.runner import AttackResult
from experiments.robustness import figures as robustness_figures
from experiments.robustness.robustness import TRANSFORMS, RobustnessReport
from ui import figures, widgets

PLAIN_COLOUR, EOT_COLOUR = figures.SOURCE_COLOUR, figures.TARGET_COLOUR
COLOURS = {"plain": PLAIN_COLOUR, "EOT": EOT_COLOUR}
GRID_COLUMNS = 6  # images per row of the transform grid, so a one-strength transform is not drawn huge
VARIED = [n for n, t in TRANSFORMS.items() if len(t.strengths) > 1]  # drawn as curves over their strengths
ONE_STEP = [n for n, t in TRANSFORMS.items() if len(t.strengths) == 1]  # (the mirror) stated as text and images


def _overview(reports: dict[str, RobustnessReport]) -> dict[str, Any]:
    counts = {
        what: [(TRANSFORMS[n].title, sum(ok for _, ok in c), len(c)) for n, c in rep.curves().items()]
        for what, rep in reports.items()
    }
    return robustness_figures.still_fooled_bars(counts, COLOURS)


def _summary(outcome: AttackResult, report: RobustnessReport | None, what: str) -> str:
    v = outcome.verdict
    ok = "fooled" if v.success else "NOT fooled"
    line = f"**{what}**: the model is {ok} ({v.label}, {v.probability:.0%}) at RMS **{v.rms_distortion:.4f}**"
    if report is None:
        return line + "."
    rows = report.rows[1:]
    return line + f"; still fooled after **{sum(r.still_fooled for r in rows)} / {len(rows)}** transformations."


def _curve(reports: dict[str, RobustnessReport], name: str) -> dict[str, Any]:
    t = TRANSFORMS[name]
    series = {what: [r.row(name, s).p_adversarial_class for s in t.strengths] for what, r in reports.items()}
    return figures.lines(
        [f"{s:g}" for s in t.strengths],
        series,
        title=f"p(target) under {t.title.lower()}",
        x_title=t.unit or "strength",
        y_title="p(target)",
        categorical_x=True,
        colours=COLOURS,
    )


def _mark(still_fooled: bool, reverted: bool) -> str:
    return "still fooled ✔" if still_fooled else "reverted" if reverted else "other class"


def _one_step(ok: dict[str, RobustnessReport]) -> None:
    """Transforms with a single strength (the mirror): a sentence and the images, not a one-dot curve."""
    for name in ONE_STEP:
        t = TRANSFORMS[name]
        parts = []
        for what, rep in ok.items():
            row = rep.row(name, t.strengths[0])
            parts.append(f"{what} → {row.label} ({_mark(row.still_fooled, row.reverted)})")
        st.markdown(f"**{t.title}** (one strength only): " + " · ".join(parts) + ".")
        grid = st.columns(GRID_COLUMNS, gap="small")
        for col, (what, rep) in zip(grid, ok.items(), strict=False):
            row = rep.row(name, t.strengths[0])
            assert row.image is not None
            widgets.show_image(col, row.image, f"{what}: {row.label}")


def show(result: dict[str, Any], *, key: str, disabled: bool) -> None:
    """What a run reached: the adversarial images and verdicts, the still-fooled overview, the curve and images of
    one transformation (chosen with the selectbox `key`) and the table of every transformation."""
    outcomes, reports = result.get("outcomes", {}), result.get("reports", {})
    if not outcomes:
        return
    cols = st.columns([1, 1.6, 1, 1.6], gap="small")  # room for each verdict sentence beside its image
    for i, (what, o) in enumerate(outcomes.items()):
        widgets.show_image(cols[2 * i], o.adversarial, f"{what}: {o.verdict.label} {o.verdict.probability:.0%}")
        with cols[2 * i + 1]:
            st.markdown(_summary(o, reports.get(what), what))
            if not o.success:
                widgets.error(
                    f"the {what} attack did not reach the target, so there is nothing to transform; "
                    "allow more steps or a larger RMS cap"
                )
    ok = {w: r for w, r in reports.items() if r is not None}
    if not ok:
        return
    widgets.chart(st.empty(), _overview(ok))
    _one_step(ok)
    name = st.selectbox("Transformation", VARIED, key=key, format_func=lambda n: TRANSFORMS[n].title, disabled=disabled)
    widgets.chart(st.empty(), _curve(ok, name))
    t = TRANSFORMS[name]
    for what, rep in ok.items():
        st.markdown(f"##### {what}")
        grid = st.columns(max(len(t.strengths), GRID_COLUMNS), gap="small")
        for col, s in zip(grid, t.strengths, strict=False):
            row = rep.row(name, s)
            assert row.image is not None
            widgets.show_image(col, row.image, f"{row.title}: {row.label} ({_mark(row.still_fooled, row.reverted)})")
    first = next(iter(ok.values()))
    widgets.table(
        st.expander(f"Every transformation, as a table ({len(first.rows) - 1} rows)"),
        pd.DataFrame(
            [
                {
                    "transform": r.title,
                    **{f"{w}: label": rep.row(r.transform, r.strength).label for w, rep in ok.items()},
                    **{
                        f"{w}: still fooled": "yes" if rep.row(r.transform, r.strength).still_fooled else "no"
                        for w, rep in ok.items()
                    },
                    "original under the same transform": r.clean_label,
                }
                for r in first.rows[1:]
            ]
        ),
    )
