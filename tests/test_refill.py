"""attacks.refill: a batch refilled as its pairs end gives every pair exactly its run alone (attacks.runner.run_batch
on that one pair with its seed): the same stop step and the same saved 8-bit image, whatever the slot count."""

from __future__ import annotations

import pytest
import torch
from tinynet import TinyClassifier

from attacks import AttackError, Goal, make_attack
from attacks.refill import Pair, run_refilled
from attacks.runner import run_batch

ATTACKS = {
    "relabel": {"step_size": 2.0, "steps": 12, "max_rms": 0.05},  # stops at success or at its RMS cap
    "pgd": {"eps": 6.0, "step_size": 1.5, "steps": 10, "random_start": 1.0},  # a random start per seed
    "mifgsm": {"eps": 6.0, "step_size": 1.0, "steps": 10},  # per-sample momentum state
}


@pytest.fixture(scope="module")
def clf() -> TinyClassifier:
    return TinyClassifier()


@pytest.fixture(scope="module")
def pairs(clf) -> list[Pair]:
    g = torch.Generator().manual_seed(11)
    x = torch.randint(0, 256, (5, 3, 16, 16), generator=g).float() / 255  # (5, 3, 16, 16) on the 8-bit grid
    source = clf(x).argmax(dim=1).tolist()
    return [Pair((i, t), x[i], source[i], t, seed=100 * i + t) for i in range(5) for t in (1, 4, 7) if t != source[i]]


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("size", [1, 3, 8])
def test_each_refilled_pair_is_its_run_alone(clf, pairs, name: str, size: int) -> None:
    attack = make_attack(name, **ATTACKS[name])
    ended = {e.tag: e for e in run_refilled(attack, clf, pairs, size=size, confidence=0.3)}
    assert sorted(ended) == sorted(p.tag for p in pairs)  # every pair once
    stops = set()
    for p in pairs:
        goal = Goal(torch.tensor([p.source]), torch.tensor([p.target]), 0.3)
        alone = run_batch(attack, clf, p.x0[None], goal, seeds=[p.seed])
        assert ended[p.tag].stopped_at == int(alone.stopped_at[0]), p.tag
        assert torch.equal(ended[p.tag].x_adv, alone.x_adv[0]), p.tag
        stops.add(ended[p.tag].stopped_at)
    assert len(stops) > 1  # pairs end at different steps: slots really were refilled mid-run


def test_what_cannot_be_refilled_is_refused_in_one_line(clf, pairs) -> None:
    with pytest.raises(AttackError, match="deepfool is not a per-sample gradient attack"):
        next(run_refilled(make_attack("deepfool"), clf, pairs, size=4, confidence=0.0))
    with pytest.raises(AttackError, match="at least 1 slot"):
        next(run_refilled(make_attack("relabel"), clf, pairs, size=0, confidence=0.0))
