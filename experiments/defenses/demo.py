"""The Defenses page's two single-shot demonstrations, as plain data (uint8 arrays, labels, numbers) a page can cache.

three_cases: one image, one defense, the three attackers of Athalye et al. (2018): the bare model attacked; the bare
model's adversarial image passed through the defense (an attacker who ignores it); the adaptive attacker's image
(BPDA / EOT / exact gradients, experiments.defenses.defenses.Defense.attackable). Each verdict is the classifier's own
on the saved 8-bit image: the plain model for the first, the defended classifier for the other two.

spot_grid: "Spot the adversarial": `n` labelled sample photos picked by the seed, a seeded subset of them relabelled
toward a random class (RMS cap 0.01, stopped at the first success), each shown with feature squeezing's score and
its threshold at 5% false positives on the clean samples that are not in the grid. The same seed gives the same grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

from attacks import AttackError, Goal, make_attack
from experiments.defenses.defenses import ResizePadDefense, attack_in_chunks, make_defense
from experiments.defenses.detection import squeeze_scores
from images.imagesets import labelled_set
from models import pil_to_tensor

SPOT_ATTACK = {"step_size": 1.0, "steps": 100, "max_rms": 0.01}  # the paper's relabelling, stopped at success


def _uint8(x: torch.Tensor) -> np.ndarray:
    """(3,H,W) in [0,1] -> (H,W,3) uint8."""
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def _goal(model: torch.nn.Module, x: torch.Tensor, targeted: bool, seed: int) -> Goal:
    src = model.probabilities(x).argmax(1).to(x.device)  # (N,)
    if not targeted:
        return Goal(src, None)
    k = len(model.categories)
    gen = torch.Generator().manual_seed(seed)
    return Goal(src, ((src.cpu() + torch.randint(1, k, (len(src),), generator=gen)) % k).to(x.device))


def _attack(
    atk: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    goal: Goal,
    seed: int,
    *,
    attacked: torch.nn.Module | None = None,
    judge: torch.nn.Module | None = None,
) -> torch.Tensor:
    """The saved 8-bit adversarial images; gradients through `attacked`, stopping when `judge` is fooled."""
    chunks = attack_in_chunks(atk, model, x, goal, chunk=8, seed=seed, attacked=attacked, judge=judge)
    return torch.cat([adv for _, adv in chunks])


def three_cases(
    model: torch.nn.Module,
    image: Image.Image,
    defense: str,
    params: Mapping[str, float],
    *,
    attack: str = "relabel",
    attack_params: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """image: an 8-bit model input. Returns {"source", "target", "cases": [{title, image (H,W,3) uint8, label,
    probability, fooled, judge}], "method"}; the target is a random class (seeded) for a targeted-only attack."""
    atk = make_attack(attack, **dict(attack_params or {}))
    d = make_defense(defense, model, **dict(params), **({"seed": seed + 7919} if defense == "resize-pad" else {}))
    x = pil_to_tensor(image).to(model.device)  # (1, 3, S, S)
    goal = _goal(model, x, not atk.supports_untargeted, seed)
    bare = _attack(atk, model, x, goal, seed)  # (1, 3, S, S), the saved 8-bit image
    # the adaptive attacker stops when the defended classifier (the third case's judge) is fooled
    adaptive = _attack(atk, model, x, goal, seed, attacked=d.attackable("adaptive", seed=seed + 1), judge=d)
    seen = bare if isinstance(d, ResizePadDefense) or defense == "ensemble" else d.transform(bare)  # (1, 3, S, S)
    cases = []
    for title, shown, judged, judge in (
        ("Bare model, attacked", bare, bare, model),
        ("Its adversarial image through the defense", seen, bare, d),
        ("Adaptive attacker (knows the defense)", adaptive, adaptive, d),
    ):
        p = judge.probabilities(judged)[0].cpu()  # (K,)
        top = int(p.argmax())
        cases.append(
            {
                "title": title,
                "image": _uint8(shown[0]),
                "label": top,
                "probability": float(p[top]),
                "fooled": bool(goal.met(p[None].to(goal.source.device))[0]),
                "judge": "plain model" if judge is model else "defended model",
            }
        )
    return {
        "source": int(goal.source[0]),
        "target": None if goal.target is None else int(goal.target[0]),
        "method": {"bpda": "BPDA", "eot": "EOT", "exact": "exact gradients"}[d.adaptive],
        "cases": cases,
    }


def spot_grid(model: torch.nn.Module, seed: int, *, n: int = 8, fpr: float = 0.05) -> dict[str, Any]:
    """Deterministic for (model, seed). Returns {"images": [(H,W,3) uint8], "ids", "attacked": [bool], "fooled":
    [bool] (the plain model's top class moved to the target), "labels" (the model's top class as shown), "scores",
    "threshold", "clean_images"}."""
    samples = labelled_set("samples", model)
    if len(samples) < n:
        raise AttackError(f"the grid needs {n} labelled samples, {len(samples)} are installed")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(samples), n, replace=False).tolist())
    attacked = sorted(rng.choice(n, int(rng.integers(2, n // 2 + 2)), replace=False).tolist())
    x_all = torch.cat([pil_to_tensor(s.image) for s in samples]).to(model.device)  # (M, 3, S, S)
    # the threshold comes from the samples NOT in the grid, so a clean grid image passing is a held-out result
    rest = [i for i in range(len(samples)) if i not in set(pick)]
    clean_scores = squeeze_scores(model, x_all[rest]).numpy()  # (M - n,)
    threshold = float(np.quantile(clean_scores, 1.0 - fpr, method="higher"))
    x = x_all[pick]  # (n, 3, S, S)
    idx = torch.tensor(attacked, device=x.device)
    goal = _goal(model, x[idx], True, seed)
    shown = x.clone()
    shown[idx] = _attack(make_attack("relabel", **SPOT_ATTACK), model, x[idx], goal, seed)
    probs = model.probabilities(shown).cpu()  # (n, K)
    met = goal.met(probs[idx.cpu()].to(goal.source.device)).tolist()
    return {
        "images": [_uint8(im) for im in shown],
        "ids": [samples[i].id for i in pick],
        "attacked": [i in attacked for i in range(n)],
        "fooled": [bool(met[attacked.index(i)]) if i in attacked else False for i in range(n)],
        "labels": probs.argmax(1).tolist(),
        "scores": squeeze_scores(model, shown).tolist(),
        "threshold": threshold,
        "clean": len(samples),
    }
