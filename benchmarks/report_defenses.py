"""The defense table, the SVM detection accuracy and feature squeezing's AUC on EfficientNet-Lite0 (figures, printed).

Run: python benchmarks/report_defenses.py [--json out.json] [--quick]
Everything on the CPU with one thread; about 10 minutes on a shared 2-core machine (--quick: a few images).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.defenses.defenses import evaluate_defenses  # noqa: E402
from experiments.defenses.detection import (  # noqa: E402
    run_squeeze_detection,
    run_svm_detection,
    shipped_detection_sets,
    svm_accuracy,
)
from images.imagesets import labelled_set  # noqa: E402
from models import class_index, load_model  # noqa: E402


def last(progress, label: str):
    start = time.perf_counter()
    item = None
    for item in progress:
        print(f"  [{time.perf_counter() - start:6.1f}s] {label}: {item.stage} {item.done}/{item.total}", flush=True)
    return item


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model("efficientnet_lite0", device="cpu")
    out: dict = {}

    images = labelled_set("samples", model)[: 6 if args.quick else None]
    print("== Defenses (relabel toward a random class, step 1/255, RMS cap 0.01, stopped at first success)")
    report = last(evaluate_defenses(model, images, attack_params={"step_size": 1.0}, seed=0), "defenses").report
    print(report.table())
    out["defenses"] = report.to_json()

    target = class_index("jeep")
    exemplars, others = shipped_detection_sets(model, "jeep")
    others = others[:6] if args.quick else others
    crops, per_side = (4, 2) if args.quick else (12, 10)
    for confidence, params in ((0.0, {"step_size": 1.0}), (0.9, {"step_size": 1.0, "steps": 300, "max_rms": 0.03})):
        print(f"== SVM detection, target jeep, confidence {confidence}")
        result = last(
            run_svm_detection(
                model,
                exemplars,
                others,
                target=target,
                confidence=confidence,
                attack_params=params,
                augment=True,
                exemplar_crops=crops,
                impostor_crops=1,
                train_per_class=per_side,
                test_per_class=per_side,
                splits=10,
            ),
            "svm",
        ).result
        loose = svm_accuracy(
            result.features, result.labels, train_per_class=per_side, test_per_class=per_side, splits=10
        )
        data = result.to_json()
        data["accuracy_split_by_crop"] = loose.to_json()
        out[f"svm_confidence_{confidence}"] = data
        print(
            f"exemplars {result.exemplars} crops of {result.exemplar_photos} photos "
            f"({result.exemplars_classified_as_target} classified jeep); impostors {result.impostors}/"
            f"{result.impostor_attempts} relabelled (mean RMS {result.impostor_mean_rms:.4f}, "
            f"mean p(jeep) {result.impostor_mean_p_target:.3f}); {per_side}+{per_side} train, "
            f"{per_side}+{per_side} test"
        )
        print(
            f"accuracy split by photo {result.scores.mean:.3f} +- {result.scores.std:.3f}; shuffled labels "
            f"{result.shuffled.mean:.3f} +- {result.shuffled.std:.3f}; "
            f"split by crop {loose.mean:.3f} +- {loose.std:.3f}"
        )

    print("== Feature squeezing (5-bit, 2x2 median), threshold at 5% FPR on half the clean images, FPR on the rest")
    photos = [im.image for im in images] if args.quick else exemplars + others
    squeeze = last(run_squeeze_detection(model, photos, fpr=0.05, seed=0), "squeeze").results
    for name, r in squeeze.items():
        print(
            f"{name:<12} AUC {r.auc:.3f}  detected {r.detection_rate:.2f} at FPR {r.fpr:.2f} "
            f"(threshold on {r.calibration} clean, FPR on {r.held_out} others, "
            f"adversarial {r.adversarial}/{r.attempts})"
        )
    out["squeeze"] = {k: v.to_json() for k, v in squeeze.items()}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
