"""Cross-checks against peer libraries on the same model and input (advertorch's external_tests idea).

torchattacks runs every step on float iterates with no early stop; ours does the same with quantize=False and
early_stop=False, so the perturbations must agree up to pixels whose gradient is numerically zero.
"""

from __future__ import annotations

import pytest
import torch

from attacks import make_attack
from attacks.base import Goal
from attacks.runner import run_batch
from models import pil_to_tensor

torchattacks = pytest.importorskip(
    "torchattacks", reason="peer library: pip install --no-deps -r requirements-peers.txt"
)


def _x(lite0, chelsea_input) -> torch.Tensor:
    return pil_to_tensor(chelsea_input)  # (1, 3, 224, 224)


CASES = [
    ("fgsm", {"eps": 4.0}, lambda m: torchattacks.FGSM(m, eps=4 / 255)),
    (
        "bim",
        {"eps": 4.0, "step_size": 1.0, "steps": 5},
        lambda m: torchattacks.BIM(m, eps=4 / 255, alpha=1 / 255, steps=5),
    ),
    (
        "pgd",
        {"eps": 4.0, "step_size": 1.0, "steps": 5, "random_start": 0},
        lambda m: torchattacks.PGD(m, eps=4 / 255, alpha=1 / 255, steps=5, random_start=False),
    ),
    (
        "pgd_l2",
        {"eps": 1.0, "step_size": 0.25, "steps": 5, "random_start": 0},
        lambda m: torchattacks.PGDL2(m, eps=1.0, alpha=0.25, steps=5, random_start=False),
    ),
    (
        "mifgsm",
        {"eps": 6.0, "step_size": 1.0, "steps": 5, "decay": 1.0},
        lambda m: torchattacks.MIFGSM(m, eps=6 / 255, alpha=1 / 255, steps=5, decay=1.0),
    ),
]


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_same_perturbation_as_torchattacks(lite0, chelsea_input, name, ours, theirs, targeted: bool) -> None:
    x = _x(lite0, chelsea_input)
    source = lite0(x).argmax(1)  # (1,)
    target = torch.tensor([879])  # umbrella
    peer = theirs(lite0)
    if targeted:
        peer.set_mode_targeted_by_label(quiet=True)
        adv_peer = peer(x, target)
    else:
        adv_peer = peer(x, source)
    goal = Goal(source, target if targeted else None)
    attack = make_attack(name, **ours, quantize=False, early_stop=False)
    # Our Step holds the 8-bit image; compare the float iterate by re-running the same loop's last update:
    # quantize both sides (the saved images) and require near-identical bytes.
    last = run_batch(attack, lite0, x, goal).last
    peer_8bit = torch.round(adv_peer.clamp(0, 1) * 255) / 255
    differing = (last.x_adv - peer_8bit).abs() > 1e-6
    assert differing.float().mean().item() < 0.002, f"{differing.float().mean().item():.4%} of values differ"
    delta_ours = (last.x_adv - x).flatten()
    delta_peer = (peer_8bit - x).flatten()
    cos = torch.nn.functional.cosine_similarity(delta_ours, delta_peer, dim=0).item()
    assert cos > 0.99
