"""`cli.py detect`: tell adversarial images apart (experiments.defenses.detection). svm: the relabelling paper's RBF
SVM on penultimate features, true exemplars of --target against images of other classes relabelled toward it; squeeze:
feature squeezing's score, its threshold at 5% false positives on clean images, and the AUC per attack."""

from __future__ import annotations

import argparse

from commands.common import add_model, add_output, emit
from commands.defend import add_images


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("detect", help="tell relabelled images apart: an SVM on features, or feature squeezing")
    add_model(p)
    add_images(p)
    p.add_argument("--target", default="jeep", help="the class impostors are relabelled toward (svm; default jeep)")
    p.add_argument("--method", choices=("svm", "squeeze"), default="svm", help="the detector (default svm)")
    p.add_argument("--splits", type=int, default=10, help="random train/test splits of the SVM (default 10)")
    p.add_argument(
        "--train", type=int, help="training items per class (default: 20 from a folder, the paper's; 10 from samples)"
    )
    p.add_argument(
        "--test", type=int, help="test items per class (default: 30 from a folder, the paper's; 10 from samples)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the splits, crops and targets")
    add_output(p)
    p.set_defaults(func=run)
    return p


def _bar(work, desc: str):  # noqa: ANN001, ANN202
    """Consume a progress generator with tqdm on stderr; return its last item."""
    from tqdm import tqdm

    last = None
    with tqdm(desc=desc, leave=False) as bar:
        for last in work:
            bar.total = last.total
            bar.set_postfix_str(last.stage)
            bar.update(last.done - bar.n)
    assert last is not None
    return last


def run(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from experiments.defenses.detection import (
        SHIPPED_CROPS,
        SHIPPED_PER_SIDE,
        run_squeeze_detection,
        run_svm_detection,
        shipped_detection_sets,
    )
    from images.imagesets import labelled_set
    from models import class_index, load_model

    target = class_index(args.target)
    if not 1 <= args.splits <= 1000:
        raise AttackError(f"--splits must be in [1, 1000], got {args.splits}")
    model = load_model(args.model)
    if args.images == "samples":
        exemplars, others = shipped_detection_sets(model, target)
        design = {"augment": True, "exemplar_crops": SHIPPED_CROPS}
        design |= {"train_per_class": SHIPPED_PER_SIDE, "test_per_class": SHIPPED_PER_SIDE}
    else:
        images = labelled_set(args.images, model)
        exemplars = [im.image for im in images if im.label == target]
        others = [im.image for im in images if im.label != target]
        design = {"train_per_class": 20, "test_per_class": 30}
    for flag, key in (("train", "train_per_class"), ("test", "test_per_class")):
        if getattr(args, flag) is not None:
            design[key] = getattr(args, flag)
    if args.method == "squeeze":
        photos = exemplars + others
        results = _bar(run_squeeze_detection(model, photos, seed=args.seed), "feature squeezing").results
        data = {"model": model.name, "images": len(photos), "attacks": {k: r.to_json() for k, r in results.items()}}
        lines = [f"{model.name}: feature squeezing (5-bit, 2x2 median) on {len(photos)} clean images"]
        for name, r in results.items():
            lines.append(
                f"{name:<12} AUC {r.auc:.3f}  detected {r.detection_rate:.0%} at threshold {r.threshold:.3f} "
                f"(false positives {r.fpr:.0%} of {r.held_out} held-out clean, threshold set on {r.calibration}; "
                f"adversarial {r.adversarial}/{r.attempts} successful)"
            )
        emit(data, args.json, "\n".join(lines))
        return 0
    if not exemplars:
        raise AttackError(f"no image of {args.target!r} in {args.images!r}")
    need = design["train_per_class"] + design["test_per_class"]
    if args.images != "samples" and min(len(exemplars), len(others)) < need:
        raise AttackError(
            f"{len(exemplars)} photos of {args.target} and {len(others)} of other classes: too few for "
            f"{design['train_per_class']} training and {design['test_per_class']} test items per class "
            "(the paper's 20+30); give --train and --test, or more photos"
        )
    work = run_svm_detection(
        model,
        exemplars,
        others,
        target=target,
        attack_params={"step_size": 1.0},
        splits=args.splits,
        seed=args.seed,
        **design,
    )
    r = _bar(work, "relabel impostors").result
    per = f"{r.scores.train_per_class}+{r.scores.train_per_class} train, {r.scores.test_per_class}+"
    lines = [
        f"{r.model}: RBF SVM on penultimate features, true {r.target_label} vs impostors relabelled to it",
        f"exemplars: {r.exemplars} items from {r.exemplar_photos} photos"
        + (" (random crops: the shipped samples hold few photos per class)" if r.augmented else ""),
        f"impostors: {r.impostors}/{r.impostor_attempts} relabelled (mean RMS {r.impostor_mean_rms:.4f}, "
        f"mean p(target) {r.impostor_mean_p_target:.2f})",
        f"splits: {len(r.scores.accuracies)} x ({per}{r.scores.test_per_class} test, split by photo)",
        f"held-out accuracy {r.scores.mean:.1%} +- {r.scores.std:.1%}; shuffled-label control "
        f"{r.shuffled.mean:.1%} +- {r.shuffled.std:.1%} (chance 50%; paper: 89.6%)",
    ]
    emit(r.to_json(), args.json, "\n".join(lines))
    return 0
