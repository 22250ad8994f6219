"""Telling adversarial images apart: the relabelling paper's SVM on penultimate features, and feature squeezing.

Seed 004 sec. 4 (Robinson & Graham 2015): images of other classes are relabelled toward one target class; an
RBF-kernel SVM on the features before the last fully connected layer tells 20 relabelled impostors from 20 true
exemplars of the target (tested on 30+30), 89.6% accuracy averaged over 10 random sets. Here the same pipeline
(scikit-learn: StandardScaler + SVC(kernel="rbf") in a Pipeline) runs on any classifier with `features` (the input
of its final Linear layer, models.Classifier.features), with held-out accuracy over random splits (mean and std)
and a control with shuffled training labels, which must stay near chance. The high-confidence attacker keeps
relabelling until p(target) >= confidence, where the impostors' features should look more like true ones.

The shipped samples hold at most two photos of a class (two jeeps among Foolbox's 20), so the default exemplars
are random crops (with mirroring) of those photos, and the impostors random crops of every other sample photo,
relabelled: the same augmentation on both sides, so it cannot be what the SVM learns. Splits are grouped by photo
(all crops of one photo are on the same side), so the SVM never sees a crop of a test photo in training. With a
folder of tens of photos per class the paper's design applies as is (20+20 train, 30+30 test, one item per photo).

Feature squeezing (Xu, Evans & Qi, NDSS 2018): the score of an image is the largest L1 distance between the model's
probabilities on it and on its squeezed versions (5-bit depth, 2x2 median: their ImageNet squeezers, non-local means
left out); the threshold is set at a chosen false-positive rate on clean images; ROC and AUC (sklearn.metrics) per
attack, over the attack's successful images only (as in the paper).

Public API
----------
penultimate_features(model, x, batch_size=16) -> Tensor (N, D)
augmented_crops(image, n, *, size, seed, min_scale=0.5) -> list[Image]
svm_accuracy(features, labels, *, groups=None, train_per_class, test_per_class, splits=10, seed=0,
             shuffle_labels=False) -> SplitScores
shipped_detection_sets(model, target="jeep") -> (exemplars, others)     photos as 8-bit model inputs
run_svm_detection(model, exemplars, others, *, target, confidence=0.0, attack_params=None, augment=False,
                  exemplar_crops=1, impostor_crops=1, train_per_class=20, test_per_class=30, splits=10, grouped=True,
                  seed=0, chunk=8) -> Iterator[DetectionProgress]      last progress has .result (SvmDetectionResult)
SQUEEZERS, squeeze_scores(model, x, squeezers=("bits-5", "median-2x2")) -> Tensor (N,)
squeeze_roc(clean_scores, adversarial_scores, *, fpr=0.05, attack="") -> SqueezeResult
SQUEEZE_ATTACKS, run_squeeze_detection(model, images, *, attacks=None, fpr=0.05, seed=0, chunk=8)
    -> Iterator[SqueezeProgress]                              last progress has .results (attack -> SqueezeResult)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import auc, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import Tensor, nn

from attacks import AttackError, Goal, make_attack
from attacks.metrics import rms
from experiments.common import check_number
from experiments.defenses.defenses import attack_in_chunks, bit_depth, median_filter
from models import class_index, pil_to_tensor

# --- features and augmentation --------------------------------------------------------------------------------


def penultimate_features(model: nn.Module, x: Tensor, batch_size: int = 16) -> Tensor:
    """(N,3,H,W) in [0,1] -> (N,D) the input of the model's final Linear layer (Classifier.features), on the CPU."""
    features = getattr(model, "features", None)
    if not callable(features):
        raise AttackError(f"model {getattr(model, 'name', type(model).__name__)} exposes no penultimate features")
    with torch.no_grad():
        out = [features(x[i : i + batch_size].to(model.device)).flatten(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)  # (N, D)


def augmented_crops(image: Image.Image, n: int, *, size: int, seed: int, min_scale: float = 0.5) -> list[Image.Image]:
    """n random square crops covering min_scale..1 of the shorter side, mirrored at random, resized to `size`."""
    rng = np.random.default_rng(seed)
    w, h = image.size
    out = []
    for _ in range(n):
        side = int(round(min(w, h) * rng.uniform(min_scale, 1.0)))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


# --- the SVM over random splits -------------------------------------------------------------------------------


@dataclass
class SplitScores:
    """Held-out accuracy of the RBF SVM over random splits, each with train_per_class + test_per_class per class."""

    accuracies: list[float]
    train_per_class: int
    test_per_class: int
    shuffled_labels: bool
    #: each split's test items (indices into the features), so a control can be checked to use the same splits
    test_items: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "splits": len(self.accuracies),
            "accuracies": self.accuracies,
            "train_per_class": self.train_per_class,
            "test_per_class": self.test_per_class,
            "shuffled_labels": self.shuffled_labels,
        }


def _grouped_split(
    labels: np.ndarray, groups: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per class: whole groups (photos) go to the test side until it holds n_test items, the rest to training;
    then exactly n_test / n_train items are drawn from each side."""
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        order = rng.permutation(np.unique(groups[idx]))
        test_groups: list[Any] = []
        for g in order:
            if np.isin(groups[idx], test_groups).sum() >= n_test:
                break
            test_groups.append(g)
        in_test = np.isin(groups[idx], test_groups)
        if in_test.sum() < n_test or (~in_test).sum() < n_train:
            raise AttackError(
                f"class {c} has {len(idx)} items in {len(order)} photos: too few for {n_train} training and "
                f"{n_test} test items from different photos"
            )
        test.append(rng.choice(idx[in_test], n_test, replace=False))
        train.append(rng.choice(idx[~in_test], n_train, replace=False))
    return np.concatenate(train), np.concatenate(test)


def svm_accuracy(
    features: np.ndarray | Tensor,
    labels: np.ndarray | Sequence[int],
    *,
    groups: np.ndarray | Sequence[int] | None = None,
    train_per_class: int,
    test_per_class: int,
    splits: int = 10,
    seed: int = 0,
    shuffle_labels: bool = False,
) -> SplitScores:
    """Train StandardScaler + RBF SVC on train_per_class items of each class, test on test_per_class others, over
    `splits` random splits (grouped: items of one group never on both sides). shuffle_labels permutes the training
    labels: the control that must score near chance. The splits come from `seed` alone (the permutation from its
    own generator), so the control with the same seed is scored on the very same splits as the real labels."""
    splits = check_number("splits", splits, 1, 1000, integer=True)
    train_per_class = check_number("train items per class", train_per_class, 1, 100000, integer=True)
    test_per_class = check_number("test items per class", test_per_class, 1, 100000, integer=True)
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(np.unique(y)) != 2:
        raise AttackError(f"the SVM needs two classes of items, got {len(np.unique(y))}")
    rng = np.random.default_rng(seed)  # the splits only
    shuffler = np.random.default_rng([seed, 1])  # the control's label permutations, apart from the splits
    scores, tests = [], []
    for _ in range(splits):
        tr, te = _grouped_split(y, g, train_per_class, test_per_class, rng)
        y_train = shuffler.permutation(y[tr]) if shuffle_labels else y[tr]
        clf = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, gamma="scale"))
        clf.fit(x[tr], y_train)
        scores.append(float((clf.predict(x[te]) == y[te]).mean()))
        tests.append(te.tolist())
    return SplitScores(scores, train_per_class, test_per_class, shuffle_labels, tests)


# --- the paper's experiment -----------------------------------------------------------------------------------

#: The shipped samples' design (two jeep photos at most): random crops per exemplar photo, and the items per class on
#: each side of a split. The CLI and the page both use it; a folder gets the paper's 20+20 / 30+30.
SHIPPED_CROPS, SHIPPED_PER_SIDE = 12, 10


def shipped_detection_sets(model: nn.Module, target: str | int = "jeep") -> tuple[list[Image.Image], list[Image.Image]]:
    """From the shipped samples: photos of `target` (Foolbox's labels) and every other sample photo the model does
    not already classify as `target`, all as 8-bit model inputs. Only the jeep has two photos."""
    from images import SAMPLES, load_sample

    t = class_index(target)
    exemplars, others = [], []
    for s in SAMPLES.values():
        image = model.preprocess(load_sample(s.id))
        (exemplars if s.label == t else others).append(image)
    if not exemplars:
        raise AttackError(f"no shipped sample is labelled {target!r}")
    x = torch.cat([pil_to_tensor(im) for im in others])  # (M, 3, S, S)
    keep = model.probabilities(x).argmax(1).cpu() != t
    return exemplars, [im for im, k in zip(others, keep.tolist(), strict=True) if k]


@dataclass
class SvmDetectionResult:
    """The SVM experiment: what was used (exact counts) and the held-out accuracies."""

    model: str
    target: int
    target_label: str
    confidence: float
    attack_params: dict[str, Any]
    exemplar_photos: int
    exemplars: int  # items (crops) of the target class
    exemplars_classified_as_target: int
    impostor_photos: int
    impostor_attempts: int
    impostors: int  # successfully relabelled items (verified on the 8-bit image by the plain model)
    impostor_mean_rms: float
    impostor_mean_p_target: float
    augmented: bool
    grouped: bool
    scores: SplitScores
    shuffled: SplitScores
    features: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))  # (E+I, D), for re-splitting
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # 0 exemplar, 1 impostor
    groups: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # photo index per item

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target": {"index": self.target, "label": self.target_label},
            "confidence": self.confidence,
            "attack_params": self.attack_params,
            "exemplar_photos": self.exemplar_photos,
            "exemplars": self.exemplars,
            "exemplars_classified_as_target": self.exemplars_classified_as_target,
            "impostor_photos": self.impostor_photos,
            "impostor_attempts": self.impostor_attempts,
            "impostors": self.impostors,
            "impostor_mean_rms": self.impostor_mean_rms,
            "impostor_mean_p_target": self.impostor_mean_p_target,
            "augmented_crops": self.augmented,
            "split_by_photo": self.grouped,
            "accuracy": self.scores.to_json(),
            "shuffled_label_control": self.shuffled.to_json(),
        }


@dataclass
class DetectionProgress:
    """Relabelled `done` of `total` impostors so far; `result` is set on the last progress."""

    stage: str
    done: int
    total: int
    result: SvmDetectionResult | None = None


def _items(
    photos: Sequence[Image.Image], crops: int, augment: bool, size: int, seed: int
) -> tuple[list[Image.Image], list[int]]:
    """Items and their photo index: the photos themselves, or `crops` random crops of each."""
    if not augment:
        return list(photos), list(range(len(photos)))
    items, groups = [], []
    for i, photo in enumerate(photos):
        items += augmented_crops(photo, crops, size=size, seed=seed * 100003 + i)
        groups += [i] * crops
    return items, groups


def run_svm_detection(
    model: nn.Module,
    exemplars: Sequence[Image.Image],
    others: Sequence[Image.Image],
    *,
    target: int,
    confidence: float = 0.0,
    attack_params: Mapping[str, float] | None = None,
    augment: bool = False,
    exemplar_crops: int = 1,
    impostor_crops: int = 1,
    train_per_class: int = 20,
    test_per_class: int = 30,
    splits: int = 10,
    grouped: bool = True,
    seed: int = 0,
    chunk: int = 8,
) -> Iterator[DetectionProgress]:
    """Relabel `others` (or `impostor_crops` random crops of each) toward `target` with the paper's attack until
    the plain model's 8-bit verdict is the target (with p >= confidence), extract penultimate features of the
    successful impostors and of the exemplars (or `exemplar_crops` crops of each), and score the RBF SVM over
    `splits` random splits, grouped by photo unless grouped=False (then crops of one photo may sit on both sides,
    which flatters the SVM); the shuffled-label control runs on the very same splits."""
    confidence = check_number("confidence", confidence, 0.0, 0.9999)
    if not augment and (exemplar_crops != 1 or impostor_crops != 1):
        raise AttackError("crops per photo need augment=True (otherwise each photo is one item)")
    exemplar_crops = check_number("exemplar crops", exemplar_crops, 1, 1000, integer=True)
    impostor_crops = check_number("impostor crops", impostor_crops, 1, 1000, integer=True)
    atk = make_attack("relabel", **dict(attack_params or {}))
    size = model.input_size
    ex_items, ex_groups = _items(exemplars, exemplar_crops, augment, size, seed)
    im_items, im_groups = _items(others, impostor_crops, augment, size, seed + 1)
    device = model.device
    x_ex = torch.cat([pil_to_tensor(im) for im in ex_items]).to(device)  # (E, 3, S, S)
    x_im = torch.cat([pil_to_tensor(im) for im in im_items]).to(device)  # (I, 3, S, S)
    src = model.probabilities(x_im).argmax(1).to(device)  # (I,)
    if bool((src == target).any()):
        raise AttackError("some impostor items are already classified as the target; leave those photos out")
    goal = Goal(src, torch.full_like(src, target), confidence)
    advs = []
    for done, x_adv in attack_in_chunks(atk, model, x_im, goal, chunk=chunk, seed=seed):
        advs.append(x_adv)  # (n, 3, S, S): the saved 8-bit images
        yield DetectionProgress("relabel impostors", done, len(x_im))
    x_adv = torch.cat(advs)  # (I, 3, S, S)
    probs = model.probabilities(x_adv).to(device)  # judged by the plain model on the 8-bit image
    ok = goal.met(probs).cpu()  # (I,)
    if int(ok.sum()) == 0:
        raise AttackError("no impostor was relabelled successfully; raise steps or max_rms")
    f_ex = penultimate_features(model, x_ex).numpy()
    f_im = penultimate_features(model, x_adv[ok.to(device)]).numpy()
    feats = np.concatenate([f_ex, f_im])
    labels = np.array([0] * len(f_ex) + [1] * len(f_im))
    groups = np.array(ex_groups + [len(exemplars) + g for g, k in zip(im_groups, ok.tolist(), strict=True) if k])
    common = {
        "groups": groups if grouped else None,
        "train_per_class": train_per_class,
        "test_per_class": test_per_class,
    }
    scores = svm_accuracy(feats, labels, splits=splits, seed=seed, **common)
    shuffled = svm_accuracy(feats, labels, splits=splits, seed=seed, shuffle_labels=True, **common)
    ex_top = model.probabilities(x_ex).argmax(1).cpu()
    result = SvmDetectionResult(
        model=getattr(model, "name", type(model).__name__),
        target=target,
        target_label=model.categories[target],
        confidence=confidence,
        attack_params=dict(atk.hparams),
        exemplar_photos=len(exemplars),
        exemplars=len(ex_items),
        exemplars_classified_as_target=int((ex_top == target).sum()),
        impostor_photos=len(set(g for g, k in zip(im_groups, ok.tolist(), strict=True) if k)),
        impostor_attempts=len(im_items),
        impostors=int(ok.sum()),
        impostor_mean_rms=float(rms(x_adv, x_im)[ok.to(device)].mean()),
        impostor_mean_p_target=float(probs[ok.to(device), target].mean()),
        augmented=augment,
        grouped=grouped,
        scores=scores,
        shuffled=shuffled,
        features=feats,
        labels=labels,
        groups=groups,
    )
    yield DetectionProgress("svm", len(x_im), len(x_im), result)


# --- feature squeezing ----------------------------------------------------------------------------------------

#: The squeezers of Xu et al.'s ImageNet joint detector (non-local means left out), by name.
SQUEEZERS: dict[str, Callable[[Tensor], Tensor]] = {
    "bits-5": lambda x: bit_depth(x, 5),
    "median-2x2": lambda x: median_filter(x, 2),
}


def squeeze_scores(model: nn.Module, x: Tensor, squeezers: Sequence[str] = tuple(SQUEEZERS)) -> Tensor:
    """(N,3,H,W) -> (N,) max over squeezers of the L1 distance between probability vectors (Xu et al. eq. 1)."""
    unknown = [s for s in squeezers if s not in SQUEEZERS]
    if unknown or not squeezers:
        raise AttackError(f"unknown squeezer {unknown[0] if unknown else None!r}; choose from: {', '.join(SQUEEZERS)}")
    p = model.probabilities(x)  # (N, K)
    dists = [(p - model.probabilities(SQUEEZERS[s](x))).abs().sum(1) for s in squeezers]  # each (N,)
    return torch.stack(dists).amax(0).cpu()  # (N,)


@dataclass
class SqueezeResult:
    """Feature squeezing against one attack: ROC over clean vs successful adversarial images."""

    attack: str
    clean: int
    adversarial: int  # successful adversarial images scored
    attempts: int
    auc: float
    fpr_target: float
    threshold: float
    fpr: float  # false-positive rate at the threshold on the held-out clean images (never the calibration ones)
    detection_rate: float  # adversarial images scoring above the threshold
    roc_fpr: list[float] = field(repr=False)
    roc_tpr: list[float] = field(repr=False)
    calibration: int = 0  # clean images that set the threshold (0: the same `clean` images, an in-sample rate)
    held_out: int = 0  # clean images the false-positive rate is measured on

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def squeeze_roc(
    clean_scores: np.ndarray | Tensor,
    adversarial_scores: np.ndarray | Tensor,
    *,
    fpr: float = 0.05,
    attack: str = "",
    attempts: int | None = None,
    calibration: np.ndarray | Tensor | Sequence[int] | None = None,
) -> SqueezeResult:
    """Threshold at the (1-fpr) quantile of the calibration clean scores, taken as an observed score (method
    'higher'); the false-positive rate is then measured on the OTHER clean images, so it is an estimate, not the
    target restated (on the calibration images themselves it never exceeds fpr by construction). `calibration`:
    indices into clean_scores; None: the threshold is set on every clean image and the rate is in-sample (stated
    by calibration=0). ROC curve and AUC (threshold-free) with sklearn.metrics over every clean image."""
    fpr = check_number("false-positive rate", fpr, 0.0, 1.0)
    clean = np.asarray(clean_scores, dtype=np.float64)
    adv = np.asarray(adversarial_scores, dtype=np.float64)
    if len(clean) == 0 or len(adv) == 0:
        raise AttackError(f"feature squeezing needs clean and adversarial images, got {len(clean)} and {len(adv)}")
    y = np.r_[np.zeros(len(clean)), np.ones(len(adv))]
    f, t, _ = roc_curve(y, np.r_[clean, adv])
    calib = np.zeros(len(clean), dtype=bool)
    if calibration is not None:
        calib[np.asarray(calibration, dtype=np.int64)] = True
        if calib.all() or not calib.any():
            raise AttackError("the calibration images must be some, not all, of the clean images")
    held = ~calib if calibration is not None else np.ones(len(clean), dtype=bool)
    threshold = float(np.quantile(clean[calib] if calibration is not None else clean, 1.0 - fpr, method="higher"))
    return SqueezeResult(
        attack=attack,
        clean=len(clean),
        adversarial=len(adv),
        attempts=len(adv) if attempts is None else attempts,
        auc=float(auc(f, t)),
        fpr_target=fpr,
        threshold=threshold,
        fpr=float((clean[held] > threshold).mean()),
        detection_rate=float((adv > threshold).mean()),
        roc_fpr=f.tolist(),
        roc_tpr=t.tolist(),
        calibration=int(calib.sum()),
        held_out=int(held.sum()),
    )


def calibration_half(n: int, seed: int) -> np.ndarray | None:
    """A seeded half of n clean images to set the threshold on (the rest measure the false-positive rate); None
    when there are too few to split (fewer than 4: the rate is then in-sample and says so)."""
    if n < 4:
        return None
    return np.sort(np.random.default_rng([seed, 2]).permutation(n)[: n // 2])


#: The attacks feature squeezing is scored against: registry attack, its parameters, whether it runs to its full
#: budget, and the goal (untargeted, or toward a random class with a confidence).
SQUEEZE_ATTACKS: dict[str, dict[str, Any]] = {
    "fgsm": {"attack": "fgsm", "params": {"eps": 4.0}},
    "pgd": {"attack": "pgd", "params": {"eps": 4.0, "step_size": 1.0, "steps": 10, "early_stop": False}},
    "relabel": {"attack": "relabel", "params": {"step_size": 1.0}, "targeted": True},
    "relabel-0.9": {
        "attack": "relabel",
        "params": {"step_size": 1.0, "steps": 300, "max_rms": 0.03},
        "targeted": True,
        "confidence": 0.9,
    },
}


@dataclass
class SqueezeProgress:
    stage: str
    done: int
    total: int
    results: dict[str, SqueezeResult] = field(default_factory=dict)


def run_squeeze_detection(
    model: nn.Module,
    images: Sequence[Image.Image],
    *,
    attacks: Sequence[str] | None = None,
    fpr: float = 0.05,
    seed: int = 0,
    chunk: int = 8,
) -> Iterator[SqueezeProgress]:
    """Score the clean 8-bit model inputs and each attack's successful 8-bit adversarial images of them (judged
    by the plain model); targeted attacks aim at a random class per image (seeded). The threshold is set on a
    seeded half of the clean images and its false-positive rate measured on the other half (calibration_half)."""
    names = list(SQUEEZE_ATTACKS) if attacks is None else list(attacks)
    unknown = [a for a in names if a not in SQUEEZE_ATTACKS]
    if unknown:
        raise AttackError(f"unknown attack {unknown[0]!r}; choose from: {', '.join(SQUEEZE_ATTACKS)}")
    device = model.device
    x0 = torch.cat([pil_to_tensor(im) for im in images]).to(device)  # (N, 3, S, S)
    clean = squeeze_scores(model, x0)
    src = model.probabilities(x0).argmax(1).to(device)
    k = len(model.categories)
    gen = torch.Generator().manual_seed(seed)
    tgt = ((src.cpu() + torch.randint(1, k, (len(src),), generator=gen)) % k).to(device)
    results: dict[str, SqueezeResult] = {}
    n_chunks = -(-len(x0) // chunk)
    done, total = 0, n_chunks * len(names)
    for name in names:
        cfg = SQUEEZE_ATTACKS[name]
        atk = make_attack(cfg["attack"], **cfg["params"])
        goal = Goal(src, tgt if cfg.get("targeted") else None, cfg.get("confidence", 0.0))
        advs = []
        for _, x_adv in attack_in_chunks(atk, model, x0, goal, chunk=chunk, seed=seed):
            advs.append(x_adv)
            done += 1
            if len(advs) < n_chunks:
                yield SqueezeProgress(name, done, total, dict(results))
        x_adv = torch.cat(advs)  # (N, 3, S, S)
        ok = goal.met(model.probabilities(x_adv).to(device))
        if bool(ok.any()):
            adv_scores = squeeze_scores(model, x_adv[ok])
            results[name] = squeeze_roc(
                clean, adv_scores, fpr=fpr, attack=name, attempts=len(x0), calibration=calibration_half(len(x0), seed)
            )
        yield SqueezeProgress(name, done, total, dict(results))
