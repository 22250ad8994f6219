"""Adversarial attacks as generators of Steps, their registry, metrics and the 8-bit verification."""

from typing import Any

from attacks.base import CONFIDENCE, DEFAULT_CONFIDENCE, Attack, AttackError, Goal, Param, SampleLoop, Step
from attacks.bim import BIM
from attacks.cw import CarliniWagnerL2
from attacks.deepfool import DeepFool
from attacks.fgsm import FGSM
from attacks.hopskipjump import HopSkipJump
from attacks.mifgsm import MIFGSM
from attacks.pgd import PGD
from attacks.pgd_l2 import PGDL2
from attacks.relabel import Relabel
from attacks.simba import SimBA
from attacks.square import SquareL2, SquareLinf

#: Every attack by registry name. Tests iterate over this dict, so a new entry is tested by existing tests.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        Relabel,
        FGSM,
        BIM,
        PGD,
        PGDL2,
        MIFGSM,
        DeepFool,
        CarliniWagnerL2,
        SquareLinf,
        SquareL2,
        SimBA,
        HopSkipJump,
    )
}
DEFAULT_ATTACK = "relabel"


def make_attack(name: str, **params: Any) -> Attack:
    """Build a registered attack; unknown names and bad parameters raise AttackError with one clear line."""
    try:
        cls = ATTACKS[name]
    except KeyError:
        raise AttackError(f"unknown attack {name!r}; choose one of: {', '.join(ATTACKS)}") from None
    return cls(**params)


__all__ = [
    "ATTACKS",
    "CONFIDENCE",
    "DEFAULT_ATTACK",
    "DEFAULT_CONFIDENCE",
    "Attack",
    "AttackError",
    "Goal",
    "Param",
    "SampleLoop",
    "Step",
    "make_attack",
]
