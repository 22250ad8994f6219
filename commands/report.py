"""`cli.py report`: a sweep database read as the seeds' figures (experiments.study.susceptibility): the success rate per
distortion cap (Robinson & Graham's 98.7% at RMS 0.01), the modify/mimic summary of seed 000, the WordNet group
table, and a black-box study's queries per pair. Per-class rates count a success at the paper's cap (or the study's
own, when lower); the curve stops at the study's cap, and rankings break rate ties by the mean RMS of the successes."""

from __future__ import annotations

import argparse
from pathlib import Path

from commands.common import add_output, emit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="read a sweep database: success per cap, modify/mimic rates, groups")
    p.add_argument("--db", required=True, help="a database written by `cli.py sweep`")
    p.add_argument("--csv", metavar="DIR", help="also write rows.csv, modify.csv, mimic.csv and groups.csv here")
    add_output(p)
    p.set_defaults(func=run)
    return p


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _rms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def run(args: argparse.Namespace) -> int:
    from experiments.study import susceptibility as sus
    from experiments.study.store import SweepStore
    from models import IMAGENET_CATEGORIES

    with SweepStore.read(args.db) as store:
        rows, params, title = store.rows(), store.params, store.describe()
    groups, class_group = sus.load_class_groups()
    cap = min(sus.PAPER_CAP, float(params["max_rms"]))
    data = {
        "db": args.db,
        "study": params,
        "cap": cap,
        **sus.report(
            rows,
            IMAGENET_CATEGORIES,
            class_group=class_group,
            groups=groups,
            cap=cap,
            study_cap=float(params["max_rms"]),
        ),
    }
    s = data["summary"]
    lines = [title, f"{s['rows']} rows, {s['images']} images, {s['seconds']:.0f} s of attack time"]
    lines.append(f"success rate by RMS distortion cap (Robinson & Graham: {sus.PAPER_SUCCESS:.1%} at {sus.PAPER_CAP}):")
    for point in data["success_by_cap"]:
        mark = "  <- the paper's cap" if point["cap"] == sus.PAPER_CAP else ""
        lines.append(f"  rms <= {point['cap']:<7g} {point['rate']:7.1%}{mark}")
    if not data["paper_cap_within_study"]:
        lines.append(
            f"  (the paper's cap {sus.PAPER_CAP} is beyond this study's cap {params['max_rms']:g}: not reported)"
        )
    mean_rms = "-" if s["mean_rms_successful"] is None else f"{s['mean_rms_successful']:.5f}"
    lines.append(
        f"at rms <= {cap:g}: success {_pct(s['success_rate'])}, mean rms of successes {mean_rms} "
        f"(paper {sus.PAPER_MEAN_RMS}), mean iterations {s['mean_iterations'] or 0:.1f}"
    )
    q = s["queries"]
    if q is not None:
        ok_q = "-" if q["median_successful"] is None else f"{q['median_successful']:.0f} / {q['mean_successful']:.1f}"
        lines.append(
            f"queries per pair ({params['attack']}, {q['rows']} rows): median {q['median']:.0f}, mean {q['mean']:.1f}; "
            f"successes at rms <= {cap:g}: median / mean {ok_q}"
        )
    lines.append(
        f"median modify rate {_pct(s['median_modify_rate'])}, median mimic rate {_pct(s['median_mimic_rate'])} "
        f"(seed 000: {sus.SEED_MEDIAN_MODIFY:.0%})"
    )
    for side in ("modify", "mimic"):
        t = data[f"{side}_ties"]
        if t["at_top"] > 1 or t["at_bottom"] > 1:
            lines.append(
                f"{t['at_top']} classes tie at the highest {side} rate ({_pct(t['top_rate'])}), {t['at_bottom']} at "
                f"the lowest ({_pct(t['bottom_rate'])}); ties ranked by the mean RMS of their successes"
            )
        for key in (f"easiest_to_{side}", f"hardest_to_{side}"):
            named = "; ".join(
                f"{c['name']} {_pct(c['rate'])} (n={c['n']}, mean rms {_rms(c['mean_rms'])})" for c in data[key]
            )
            lines.append(f"{key.replace('_', ' ')}: {named}")
    lines.append(f"{'WordNet group':<24} {'classes':>7} {'modify':>8} {'rows':>5} {'mimic':>8} {'rows':>5}")
    for g in data["groups"]:
        lines.append(
            f"{g['group']:<24} {g['classes']:>7} {_pct(g['modify']):>8} {g['modify_n']:>5} "
            f"{_pct(g['mimic']):>8} {g['mimic_n']:>5}"
        )
    if args.csv:
        out = Path(args.csv)
        out.mkdir(parents=True, exist_ok=True)
        (out / "rows.csv").write_text(sus.rows_csv(rows, IMAGENET_CATEGORIES))
        (out / "modify.csv").write_text(sus.rates_csv(sus.modify_rates(rows, cap), IMAGENET_CATEGORIES, "modify"))
        (out / "mimic.csv").write_text(sus.rates_csv(sus.mimic_rates(rows, cap), IMAGENET_CATEGORIES, "mimic"))
        (out / "groups.csv").write_text(sus.groups_csv(data["groups"]))
        lines.append(f"wrote rows.csv, modify.csv, mimic.csv and groups.csv to {out}")
    emit(data, args.json, "\n".join(lines))
    return 0
