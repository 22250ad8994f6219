"""`cli.py models`: the classifiers, their input size and whether their weights are on this disk."""

from __future__ import annotations

import argparse

from commands.common import add_output, emit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="list the classifiers, their input size and whether they work offline")
    add_output(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from models import MODELS, weights_cached

    rows = [
        {
            "name": s.name,
            "title": s.title,
            "input_size": s.input_size,
            "offline": s.offline,
            "cached": weights_cached(s.name),
        }
        for s in MODELS.values()
    ]
    lines = [f"{'name':<20} {'input':>5}  {'source':<8} weights"]
    for r in rows:
        where = "offline" if r["offline"] else "online"
        lines.append(f"{r['name']:<20} {r['input_size']:>5}  {where:<8} {'on disk' if r['cached'] else 'not cached'}")
    emit(rows, args.json, "\n".join(lines))
    return 0
