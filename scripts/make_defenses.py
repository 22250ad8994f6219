"""Precompute the Defenses page's opening table and bars: the page's default settings (EfficientNet-Lite0; JPEG,
median smoothing and bit-depth reduction at their default parameters; the paper's relabelling at its defaults; the
first 8 labelled samples; seed 0), evaluated exactly as Run evaluates them, so the lesson is on screen before anyone
presses Run. It also runs the black-box attacker (Square L-inf at its defaults, the page's "Also a black-box
attacker"), so the opening table shows that hiding the gradient does not hide the answers (--no-blackbox leaves it out).

    python scripts/make_defenses.py

Writes data/defenses/efficientnet_lite0_default.json: the report (experiments.defenses.defenses.DefenseReport's JSON),
the settings it was made with, the seconds it took and the command. tests/test_defenses_page.py checks that the page
shows these numbers and that they are what evaluate_defenses gives.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from attacks import ATTACKS  # noqa: E402
from experiments.defenses.defenses import DEFENSES, evaluate_defenses  # noqa: E402
from images.imagesets import labelled_set  # noqa: E402
from models import load_model  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "defenses"
#: The page's defaults (pages/defenses.py): what it opens on.
DEFAULT_DEFENSES = ("jpeg", "median", "bits")
DEFAULT_ATTACK = "relabel"
DEFAULT_IMAGES = 8


def default_settings(model: str = "efficientnet_lite0") -> dict:
    """The settings the page opens with, as plain values (defense and attack parameters at their defaults)."""
    return {
        "model": model,
        "defenses": {d: {p.name: p.default for p in DEFENSES[d].params} for d in DEFAULT_DEFENSES},
        "attack": DEFAULT_ATTACK,
        "attack_params": {p.name: p.default for p in ATTACKS[DEFAULT_ATTACK].params},
        "images": DEFAULT_IMAGES,
        "seed": 0,
        "blackbox": {p.name: p.default for p in ATTACKS["square"].params},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the page's server shares its cores)")
    p.add_argument("--no-blackbox", action="store_true", help="leave out the black-box (Square) attacker")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    settings = default_settings(args.model)
    if args.no_blackbox:
        settings["blackbox"] = None
    model = load_model(args.model, device="cpu")
    images = labelled_set("samples", model)[: settings["images"]]
    start = time.perf_counter()
    last = None
    for last in evaluate_defenses(
        model,
        images,
        defenses=settings["defenses"],
        attack=settings["attack"],
        attack_params=settings["attack_params"],
        seed=settings["seed"],
        blackbox=settings["blackbox"],
    ):
        print(f"[{time.perf_counter() - start:6.1f}s] {last.stage} {last.done}/{last.total}", flush=True)
    assert last is not None
    seconds = time.perf_counter() - start
    print(last.report.table())
    OUT.mkdir(parents=True, exist_ok=True)
    out = {
        "settings": settings,
        "report": last.report.to_json(),
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()} CPU, {args.threads} torch thread(s), torch {torch.__version__}",
        "command": "python scripts/make_defenses.py" + (" --no-blackbox" if args.no_blackbox else ""),
    }
    path = OUT / f"{args.model}_default.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
