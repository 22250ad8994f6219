"""The Attack Lab's settings: widget keys, their defaults, and the shareable URL that carries them.

Why the URL is synced by hand and not with `bind="query-params"`: bound widgets put the *displayed* option text in
the URL ("EfficientNet-Lite0 (offline)") and drop values equal to the default; a teacher's link should name plain
ids (`?image=chelsea&model=efficientnet_lite0&target=umbrella`) and keep every value, so that it still means the
same page if a default changes. The URL is read once per browser session, before the widgets exist, and written
after every script run. Opening a link only sets widgets: a run starts only from the Run button.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import streamlit as st

from attacks import ATTACKS, DEFAULT_ATTACK, DEFAULT_CONFIDENCE
from experiments.lab.steps import LEAST_LIKELY, RANDOM, UNTARGETED
from images import SAMPLES
from models import DEFAULT_MODEL, IMAGENET_CATEGORIES, MODELS, UnknownClassError, class_index
from ui.presenter import PRESENT as PRESENT  # keys the router needs too: named there
from ui.presenter import SETUP_OPEN as SETUP_OPEN

# Widget keys (also the names that tests and the browser tests use).
SOURCE = "source"
IMAGE = "image"
UPLOAD = "upload"
CAMERA = "camera"
MODEL = "model"
TARGET = "target"
ATTACK = "attack"
GAIN = "gain"
CONFIDENCE = "confidence"  # targeted runs stop once p(target) reaches this on the 8-bit image

SOURCES = ("Samples", "Upload", "Camera")
TARGET_SPECIALS = (LEAST_LIKELY, RANDOM, UNTARGETED)
TargetChoice = int | str  # a class index or one of TARGET_SPECIALS

_URL_SEEDED = "lab.url_seeded"
_URL_ERRORS = "lab.url_errors"


@dataclass(frozen=True)
class Preset:
    """A pairing that tells a story in class: a familiar image turned into something absurd."""

    label: str
    image: str
    target: str


PRESETS: tuple[Preset, ...] = tuple(
    p
    for p in (
        Preset("Cat → umbrella", "chelsea", "umbrella"),
        Preset("Dog → half track", "imagenet_00", "half track"),
        Preset("Espresso → tarantula", "coffee", "tarantula"),
        Preset("Rocket → banana", "rocket", "banana"),
    )
    if p.image in SAMPLES
)


def default_image() -> str | None:
    """The seed document's cat when installed, else the first sample there is."""
    return "chelsea" if "chelsea" in SAMPLES else next(iter(SAMPLES), None)


def param_key(attack: str, name: str) -> str:
    """One widget per attack and parameter, so switching attacks keeps each attack's own values and defaults."""
    return f"{attack}-{name}"


def target_text(choice: TargetChoice) -> str:
    """A target as it appears in a URL: the class name when it is unique, else its index."""
    if isinstance(choice, str):
        return choice
    name = IMAGENET_CATEGORIES[choice]
    return name if IMAGENET_CATEGORIES.count(name) == 1 else str(choice)


def parse_target(text: str) -> TargetChoice:
    """A URL's target: a special ('least-likely', 'random', 'untargeted'), a class name or an index."""
    key = text.strip().lower().replace("_", "-")
    if key in TARGET_SPECIALS:
        return key
    return class_index(text)


def _param_value(attack: str, name: str, text: str) -> float | int:
    """A link's hyperparameter, checked by the attack's own Param (AttackError is a ValueError)."""
    return ATTACKS[attack].param(name).parse(text)


def init_state() -> None:
    """Give every setting widget its default once, then let the URL override them (first run of a session only).

    Setting the defaults in session_state (and never passing value=/index= to the widgets) lets a link and a
    preset button change a widget without Streamlit's "default value and Session State" warning.
    """
    state = st.session_state
    state.setdefault(SOURCE, SOURCES[0])
    state.setdefault(IMAGE, default_image())
    state.setdefault(MODEL, DEFAULT_MODEL)
    state.setdefault(TARGET, class_index("umbrella"))
    state.setdefault(ATTACK, DEFAULT_ATTACK)
    state.setdefault(GAIN, 10)
    state.setdefault(CONFIDENCE, DEFAULT_CONFIDENCE)
    state.setdefault(PRESENT, False)
    for name, cls in ATTACKS.items():
        for p in cls.params:
            state.setdefault(param_key(name, p.name), int(p.default) if p.integer else float(p.default))
    if not state.get(_URL_SEEDED):
        state[_URL_SEEDED] = True
        state[_URL_ERRORS] = apply_query(st.query_params.to_dict())


def apply_query(query: Mapping[str, str]) -> list[str]:
    """Set the widgets from a link's parameters; returns one sentence per value that had to be ignored."""
    state = st.session_state
    errors: list[str] = []
    if "image" in query:
        if query["image"] in SAMPLES:
            state[IMAGE] = query["image"]
            state[SOURCE] = SOURCES[0]
        else:
            errors.append(f"the link's image {query['image']!r} is not one of the samples")
    if "model" in query:
        if query["model"] in MODELS:
            state[MODEL] = query["model"]
        else:
            errors.append(f"the link's model {query['model']!r} is not one of: {', '.join(MODELS)}")
    if "target" in query:
        try:
            state[TARGET] = parse_target(query["target"])
        except UnknownClassError as err:
            errors.append(f"the link's target is not usable: {err}")
    if "confidence" in query:
        try:
            value = float(query["confidence"])
        except ValueError:
            value = math.nan
        if math.isfinite(value) and 0.0 <= value <= 0.99:
            state[CONFIDENCE] = value
        else:
            errors.append("the link's confidence was ignored: it must be between 0 and 0.99")
    attack = query.get("attack", state[ATTACK])
    if attack in ATTACKS:
        state[ATTACK] = attack
        for p in ATTACKS[attack].params:
            if p.name in query:
                try:
                    state[param_key(attack, p.name)] = _param_value(attack, p.name, query[p.name])
                except ValueError as err:
                    errors.append(f"the link's {p.name.replace('_', ' ')} was ignored: {err}")
    else:
        errors.append(f"the link's attack {attack!r} is not one of: {', '.join(ATTACKS)}")
    return errors


def pin_values(keys: Iterable[str]) -> None:
    """Call from a Run button's callback: re-assign the settings so they survive the run's disabled widgets.

    Why: Streamlit drops a value that arrives for a widget registered as disabled in that script run. When a changed
    setting (a number typed without pressing Enter) and the Run click reach the server in one rerun, the run would
    use the old value. A value set through st.session_state in a callback wins over that.
    """
    state = st.session_state
    for key in keys:
        if key in state:
            state[key] = state[key]


def setting_keys() -> list[str]:
    """The Attack Lab's setting widgets whose values a callback may set (uploads and the camera cannot be set)."""
    keys = [SOURCE, IMAGE, MODEL, TARGET, ATTACK, CONFIDENCE]
    return keys + [param_key(name, p.name) for name, cls in ATTACKS.items() for p in cls.params]


def url_errors() -> list[str]:
    """What was wrong with the link this session was opened with (shown on the page, never raised)."""
    return list(st.session_state.get(_URL_ERRORS, []))


def settings_query(
    *,
    image: str | None,
    model: str,
    target: TargetChoice,
    attack: str,
    params: Mapping[str, float],
    confidence: float = 0.0,
) -> dict[str, str]:
    """The URL parameters that set the page up identically (uploads and camera shots cannot travel in a link)."""
    query = {"model": model, "target": target_text(target), "attack": attack}
    if image is not None:
        query = {"image": image, **query}
    query.update({k: f"{v:g}" for k, v in params.items()})
    if target != UNTARGETED:
        query["confidence"] = f"{confidence:g}"
    return query


def write_url(query: Mapping[str, str]) -> None:
    """Replace the page's URL parameters, only when they changed (each change is a message to the browser)."""
    if st.query_params.to_dict() != dict(query):
        st.query_params.from_dict(dict(query))
