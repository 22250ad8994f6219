"""The Susceptibility page's glue: open a study database (shipped, uploaded or run here), show seed 000's and
Robinson & Graham's figures from its rows (experiments.study.figures), and a clicked point's or cell's example,
recomputed on demand (experiments.study.examples). No gradients here."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import streamlit as st
from PIL import ImageOps

from experiments.study import figures as study_figures
from experiments.study import susceptibility as sus
from experiments.study.store import Row, StoreError, SweepStore
from experiments.study.sweep import Progress, Study, run_sweep
from images import ImageError
from images.imagesets import Selection, open_image_set
from models import IMAGENET_CATEGORIES, UnknownModelError, WeightsUnavailable
from ui import loaders, widgets

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "study" / "lite0_samples.sqlite"
MAX_PAIRS = {"cpu": 300, "cuda": 20_000}  # a study run from the page; larger ones go to the CLI


def session_dir() -> Path:
    """This browser session's folder for uploaded and page-run databases (a temp dir; Stop keeps its rows)."""
    return Path(st.session_state.setdefault("exp.sus.tmpdir", tempfile.mkdtemp(prefix="advlab-study-")))


@st.cache_data(max_entries=16, show_spinner="Reading the study…")
def _read(path: str, stamp: float) -> tuple[dict[str, Any], list[Row]]:
    with SweepStore.read(path) as store:
        return store.params, store.rows()


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Row]]:
    """(parameters, rows) of a database; cached until the file or its write-ahead log changes (StoreError for a
    bad file)."""
    files = (Path(path), Path(f"{os.fspath(path)}-wal"))
    return _read(os.fspath(path), sum(f.stat().st_mtime_ns + f.stat().st_size for f in files if f.exists()))


def uploaded(data: bytes, name: str) -> Path:
    """An uploaded database saved under the session folder (named by its content), validated by reading it; a bad
    file raises StoreError naming the upload, not the temporary copy."""
    path = session_dir() / f"upload-{hashlib.sha256(data).hexdigest()[:16]}.sqlite"
    if not path.exists():
        path.write_bytes(data)
    try:
        read(path)
    except StoreError as err:
        raise StoreError(str(err).replace(str(path), name)) from None
    return path


def describe(params: dict[str, Any], rows: Sequence[Row], shipped: bool) -> str:
    images, sources = len({r.image_id for r in rows}), len({r.source for r in rows})
    targets = len({r.target for r in rows})
    text = (
        f"**{widgets.model_title(params['model'])}**, attack **{params['attack']}** capped at RMS "
        f"**{params['max_rms']:g}**, "
        f"images **{params['image_set']}** ({images} images of {sources} classes), targets **{params['targets']}** "
        f"({targets} classes; an image is never attacked toward its own class): **{len(rows)} pairs**, each verified "
        "on its saved 8-bit image."
    )
    if shipped:
        text += " It ships with the app (no computing)."
    return text


#: How the shipped study was made, under an expander so the figures start on the first screen.
SHIPPED_NOTE = (
    "The 18 of Foolbox's 20 labelled ImageNet photos that Lite0 classifies correctly and 8 unlabelled packaged "
    "photos (attacked from the class Lite0 gives them), each toward all 999 other ImageNet classes as in Robinson & "
    "Graham, made by `python scripts/make_shipped_study.py` on an NVIDIA H100 in two minutes (about 3.5 hours on a "
    "2-core CPU). A clicked example is recomputed on this server's CPU, so its last digits can differ from the "
    "stored row."
)


# --- sections -----------------------------------------------------------------------------------------------------


def _picked(event: Any) -> Any:
    """The customdata of the first point a chart's selection event holds, or None."""
    try:
        points = event["selection"]["points"]
    except (TypeError, KeyError):
        return None
    return points[0].get("customdata") if points else None


@st.cache_data(max_entries=128, show_spinner=False)
def thumbnail(image_set: str, image_id: str, size: int = 96) -> bytes:
    image = _study_image(image_set, image_id).convert("RGB")
    return loaders.to_png(ImageOps.fit(image, (size, size)))  # square, so the captions below line up


def _study_image(image_set: str, image_id: str) -> Any:
    from experiments.study.examples import study_image

    return study_image(image_set, image_id)


def ranked_classes(
    title: str, rates: dict[int, sus.Rate], rows: Sequence[Row], key: str, image_set: str, cap: float
) -> None:
    """Easiest and hardest classes, each with the thumbnail of one of its pairs' images: for a source class an image
    of that class; for a target class the image of another class that became it (easiest) or did not (hardest).

    Up to 3 of each, never one class under both: a study of under six classes shows half of them each way (issue 20:
    with two classes both were "easiest"). The caption says what the lists rest on (classes and pairs) and, when
    every class ties, that none is easier, so the lists are by the change their successes needed, or none at all."""
    k = min(3, len(rates) // 2)
    easiest, hardest = (
        sus.ranked(rates, k, sus.mean_rms_of_successes(rows, key, cap)) if k else (list(rates.items()), [])
    )
    st.markdown(f"**{title}**")
    t = sus.ties(rates)
    pairs = sum(r.n for r in rates.values())
    base = f"{len(rates)} classes ({pairs} pair{'' if pairs == 1 else 's'})"
    labels = ("easiest", "hardest")
    if len(rates) < 2:
        labels = ("the only class", "")
        st.caption(f"One class here ({pairs} pair{'' if pairs == 1 else 's'}): nothing to rank it against.")
    elif t["at_top"] == len(rates) and not t["top_rate"]:
        st.caption(f"No pair of the {base} was relabelled at RMS ≤ {cap:g}: no class is easier than another.")
        return
    elif t["at_top"] == len(rates):
        labels = ("least change", "most change")
        which = "the class whose" if k == 1 else f"the {k} classes whose"
        st.caption(
            f"All {base} tie at {study_figures.pct(t['top_rate'])} at RMS ≤ {cap:g}: none is easiest or hardest (a "
            f"tighter cap spreads them). Shown: {which} successes needed the least change and, below, the most "
            "(mean RMS)."
        )
    else:
        st.caption(f"Of {base} at RMS ≤ {cap:g}: the {k} highest rate{'' if k == 1 else 's'}, then the {k} lowest.")
        if t["at_top"] > k:
            st.caption(
                f"{t['at_top']} classes tie at {study_figures.pct(t['top_rate'])}: among them the easiest needed the "
                "least change (mean RMS of their successes)."
            )
    for label, items in zip(labels, (easiest, hardest), strict=True):
        if not items:
            continue
        cols = st.columns(3)
        for col, (c, rate) in zip(cols, items, strict=False):
            mine = [r for r in rows if getattr(r, key) == c]
            failed = [r for r in mine if not sus.succeeded(r, cap)]  # hardest: a failed pair, else the most distorted
            row = failed[0] if label == labels[1] and failed else max(mine, key=lambda r: r.rms)
            if label == labels[0]:
                row = min(mine, key=lambda r: r.rms)  # easiest: its least distorted success
            try:
                col.image(thumbnail(image_set, row.image_id), width=80)
            except (ImageError, OSError) as err:
                col.caption(str(err))
            text = f"{label}: {widgets.class_name(c)} {study_figures.pct(rate.rate)} (n={rate.n})"
            if key == "target":
                verb = "became it" if sus.succeeded(row, cap) else "did not become it"
                text += f" · pictured: a {widgets.class_name(row.source)} photo that {verb}"
            col.caption(text)


@st.cache_data(max_entries=32, show_spinner="Recomputing this pair's attack…")
def example(params_json: str, image_id: str, target: int) -> dict[str, Any]:
    from experiments.study.examples import recompute

    params = json.loads(params_json)
    ex = recompute(loaders.get_model(params["model"]), params, image_id, target)
    return {
        "images": [loaders.to_png(i) for i in (ex.original, ex.adversarial, ex.difference)],
        **{k: getattr(ex, k) for k in ("success", "final_class", "p_target", "rms", "iterations")},
    }


def show_examples(params: dict[str, Any], chosen: list[Row], title: str, key: str, cap: float) -> None:
    """A clicked point's or cell's rows, those not relabelled within the cap first; the chosen one recomputed
    (original, adversarial, amplified difference) and its verdict compared with the stored row's."""
    chosen = sorted(chosen, key=lambda r: (sus.succeeded(r, cap), -r.rms))
    failures = sum(not sus.succeeded(r, cap) for r in chosen)
    st.markdown(
        f"##### Examples: {title} ({len(chosen)} pair{'' if len(chosen) == 1 else 's'}, "
        f"{failures} not relabelled at RMS ≤ {cap:g}; those first)"
    )

    def label(r: Row) -> str:
        mark = "✓" if sus.succeeded(r, cap) else "✗"
        pair = f"{widgets.class_name(r.source)} → {widgets.class_name(r.target)}"
        return f"{mark} {pair} · RMS {r.rms:.4f} ({r.image_id})"

    row = st.selectbox("Pair", chosen, format_func=label, key=key)
    try:
        ex = example(json.dumps(params, sort_keys=True), row.image_id, row.target)
    except (ImageError, UnknownModelError, WeightsUnavailable) as err:
        widgets.error(f"this pair cannot be recomputed: {err}")
        return
    cols = st.columns(3)
    for col, png, caption in zip(cols, ex["images"], ("original", "adversarial", "difference × 10"), strict=True):
        widgets.show_image(col, png, caption)
    recomputed = SimpleNamespace(success=ex["success"], rms=ex["rms"])
    stored, again = sus.succeeded(row, cap), sus.succeeded(recomputed, cap)
    word = {True: "relabelled", False: "not relabelled"}
    agree = "the same verdict" if stored == again else "a different verdict (rounding differs between machines)"
    outcome = f"it ended as {widgets.class_name(ex['final_class'])}"
    if ex["final_class"] == row.target and not again:
        outcome = "it reached the target, but only above the cap"
    st.caption(
        f"At RMS ≤ {cap:g} the stored row was {word[stored]} (RMS {row.rms:.4f}, {row.iterations} steps). Recomputed "
        f"now on this server it is {word[again]}: {outcome} (p(target) = {ex['p_target']:.2f}, RMS {ex['rms']:.4f}, "
        f"{ex['iterations']} steps). {agree.capitalize()}."
    )


def _examples(
    params: dict[str, Any],
    rows: list[Row],
    picked: Any,
    key: str,
    cap: float,
    class_group: dict[int, str] | None = None,
) -> None:
    """The examples of a clicked class ("c:N": its pairs as a source, then as a target), pair ("p:IMAGE|TARGET") or
    group cell ("g:SOURCE|TARGET")."""
    if picked is None:
        st.caption("Click a point or a cell: its examples appear here.")
        return
    kind, _, what = str(picked).partition(":")
    if kind == "c":
        c = int(what)
        for side, title in (("source", "images of {} (modify)"), ("target", "other images toward {} (mimic)")):
            chosen = [r for r in rows if getattr(r, side) == c]
            if chosen:
                show_examples(params, chosen, title.format(widgets.class_name(c)), f"{key}.{side}", cap)
    elif kind == "p":
        image_id, _, target = what.rpartition("|")
        chosen = [r for r in rows if (r.image_id, r.target) == (image_id, int(target))]
        show_examples(params, chosen, f"{image_id} → {widgets.class_name(int(target))}", key, cap)
    elif kind == "g" and class_group is not None:
        a, _, b = what.partition("|")
        chosen = [r for r in rows if (class_group[r.source], class_group[r.target]) == (a, b)]
        show_examples(params, chosen, f"{a} → {b}", key, cap)


#: The WordNet group table's columns as the page shows them (an empty cell: no pair of that side in the group).
GROUP_COLUMNS = {
    "group": st.column_config.TextColumn("WordNet group"),
    "classes": st.column_config.NumberColumn("ImageNet classes"),
    "modify": st.column_config.TextColumn("modify rate"),
    "modify_n": st.column_config.NumberColumn("pairs from it"),
    "mimic": st.column_config.TextColumn("mimic rate"),
    "mimic_n": st.column_config.NumberColumn("pairs toward it"),
}


def group_table(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The group rows with rates as text (pct), "–" where a side has no pair (a None cell would read "None")."""
    return [{**g, **{k: "–" if g[k] is None else study_figures.pct(g[k]) for k in ("modify", "mimic")}} for g in groups]


def show_study(params: dict[str, Any], rows: list[Row], key: str) -> None:
    """Every figure of the study; clicks on the scatter or the heatmap show examples."""
    caps = [c for c in sus.CAPS if c <= float(params["max_rms"])] or [float(params["max_rms"])]
    paper = min(sus.PAPER_CAP, caps[-1])
    controls, curve = st.columns([1, 1.6], gap="large")  # the cap and what it counts beside the curve it moves
    cap = controls.select_slider(
        "Count a success at RMS distortion ≤",
        caps,
        value=paper,
        key=f"{key}.cap",
        help="The paper's cap is 0.01. A tighter cap spreads the per-class rates apart (the blog post 'Seeing "
        "with Deep Learning' finds a median of 85% on ResNet).",
    )
    s = sus.summary(rows, cap)
    with controls:
        cols = [c for row in (st.columns(2), st.columns(2)) for c in row]
    cols[0].metric("Relabelled", f"{s['success_rate']:.1%}", help=f"At RMS ≤ {cap:g}. Robinson & Graham: 98.7% at 0.01")
    mean_rms = "–" if s["mean_rms_successful"] is None else f"{s['mean_rms_successful']:.4f}"
    cols[1].metric("Mean RMS", mean_rms, help=f"Of the successes; the paper: {sus.PAPER_MEAN_RMS} on GoogLeNet")
    cols[2].metric(
        "Median modify rate",
        study_figures.pct(s["median_modify_rate"]),
        help='"Seeing with Deep Learning": 85% on ResNet',
    )
    cols[3].metric("Median mimic", study_figures.pct(s["median_mimic_rate"]), help="Per target class")
    curve.plotly_chart(
        study_figures.success_curve(rows, float(params["max_rms"]), cap),
        key=f"{key}.curve",
        config={"displayModeBar": False},
    )
    modify, mimic = sus.modify_rates(rows, cap), sus.mimic_rates(rows, cap)
    left, right = st.columns(2)
    left.plotly_chart(study_figures.histogram(modify, "modify"), key=f"{key}.hmod", config={"displayModeBar": False})
    right.plotly_chart(study_figures.histogram(mimic, "mimic"), key=f"{key}.hmim", config={"displayModeBar": False})
    with left:
        ranked_classes("Source classes (modify)", modify, rows, "source", params["image_set"], cap)
    with right:
        ranked_classes("Target classes (mimic)", mimic, rows, "target", params["image_set"], cap)
    crowded = " (at 0.01 most classes sit at 100%: a tighter cap spreads them)" if cap >= sus.PAPER_CAP else ""
    st.caption(f"Rates count a success at RMS ≤ {cap:g}{crowded}. Click a point or a cell to see its examples.")
    figure, shows = study_figures.scatter(rows, cap)
    if shows == "pairs":
        st.caption(
            "No class here is both a source and a target (a random target set), so the modify-vs-mimic "
            "scatter is empty; every pair is drawn instead. With `--targets all` each class is both."
        )
    chart, beside = st.columns([3, 2], gap="medium")  # a click's example beside its chart, not a screen below
    event = chart.plotly_chart(figure, key=f"{key}.scatter", on_select="rerun", selection_mode="points")
    with beside:
        _examples(params, rows, _picked(event), f"{key}.exs", cap)
    groups, class_group = sus.load_class_groups()
    data = sus.report(
        rows, IMAGENET_CATEGORIES, class_group=class_group, groups=groups, cap=cap, study_cap=float(params["max_rms"])
    )
    table = group_table(data["groups"])
    # every group's row at once (35-px rows and the header): the default height cut the 11th row in half (a walk)
    st.dataframe(table, hide_index=True, column_config=GROUP_COLUMNS, height=35 * (min(len(table), 30) + 1) + 3)
    names, matrix = data["group_matrix"]["groups"], data["group_matrix"]["rates"]
    src = [i for i, line in enumerate(matrix) if any(v is not None for v in line)]
    tgt = [j for j in range(len(names)) if any(line[j] is not None for line in matrix)]
    sub = [[matrix[i][j] for j in tgt] for i in src]
    heat = study_figures.group_heatmap([names[i] for i in src], [names[j] for j in tgt], sub)
    chart, beside = st.columns([2.2, 1], gap="medium")
    event = chart.plotly_chart(heat, key=f"{key}.heat", on_select="rerun", selection_mode="points")
    with beside:
        _examples(params, rows, _picked(event), f"{key}.exg", cap, class_group)
    st.download_button(
        "Download the rows (CSV)",
        lambda: sus.rows_csv(rows, IMAGENET_CATEGORIES),  # made on click: 2.5 MB for the shipped study
        "study_rows.csv",
        mime="text/csv",
        key=f"{key}.csv",
        on_click="ignore",
        icon=":material/download:",
    )


# --- a study run from the page --------------------------------------------------------------------------------


def page_study(model: str, images: str, limit: int, targets: int, max_rms: float) -> Study:
    return Study(
        model=model,
        image_set=images,
        attack="relabel",
        selection=Selection(limit=limit),
        targets=f"random:{targets}",
        max_rms=max_rms,
    )


def cli_command(study: Study) -> str:
    return (
        f"python cli.py sweep --model {study.model} --images {study.image_set} \\\n"
        f"    --limit {study.selection.limit} --targets {study.targets} --max-rms {study.max_rms:g} --db study.sqlite\n"
        "python cli.py report --db study.sqlite   # or open study.sqlite on this page"
    )


def too_big(study: Study, device: str) -> str | None:
    """Why the page will not run this study here (the CLI then does), or None."""
    n_images = min(study.selection.limit or 10**9, len(open_image_set(study.image_set).items))
    pairs = n_images * int(study.targets.partition(":")[2])
    limit = MAX_PAIRS.get(device, MAX_PAIRS["cpu"])
    return f"up to {pairs} pairs is too many for this page on {device} (at most {limit})" if pairs > limit else None


def sweep(model: Any, study: Study, data: dict[str, Any]) -> Iterator[Progress]:
    """Run the study into the session's database for it (same parameters: resumed); data['db'] names the file."""
    digest = hashlib.sha256(json.dumps(study.params(), sort_keys=True).encode()).hexdigest()[:16]
    data["db"] = str(session_dir() / f"run-{digest}.sqlite")
    with SweepStore.open(data["db"], study.params()) as store:
        for progress in run_sweep(model, open_image_set(study.image_set), study, store):
            data["done"], data["total"] = progress.done, progress.total
            data["stopped"] = (
                f"Stopped: {progress.done} of {progress.total} pairs kept; Run again to resume."
                if progress.stage != "screen"
                else "Stopped while classifying the images; Run again to continue."
            )
            yield progress


def live(slot: Any, data: dict[str, Any]) -> Any:
    """The live view of a run: progress and the success curve of the rows so far."""

    def paint(progress: Progress) -> None:
        with slot.container():
            st.progress(
                progress.done / max(progress.total, 1), text=f"{progress.stage}: {progress.done}/{progress.total}"
            )
            if progress.stage == "attack" and "db" in data:
                params, rows = read(data["db"])
                widgets.chart(st, study_figures.success_curve(rows, float(params["max_rms"])))

    return paint
