"""The Attack Lab's inputs: image (gallery, upload, camera), model, target class and attack with its parameters.

Each picker draws its widgets where it is called, shows what is wrong with the input as one st.error sentence,
and returns None (or a not-ready value) instead of raising, so the rest of the page stays usable.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from attacks import ATTACKS, Attack, AttackError, Param, make_attack
from attacks.queries import BlackBoxAttack
from images import SAMPLES, ImageError
from models import IMAGENET_CATEGORIES, MODELS, Classifier, class_index
from ui import loaders, state, widgets

GALLERY_COLUMNS = 3  # at 1366x768 four were too narrow: "Use" cut to "U…", names broken mid-word
PRESET_KEY = "preset"


@dataclass(frozen=True)
class ImageChoice:
    """The picked image: a sample id, or the bytes of an upload / camera shot (never the UploadedFile itself)."""

    name: str
    sample_id: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class ModelInput:
    """The picked image as the picked model sees it, and what the model makes of it."""

    model_name: str
    model: Classifier
    png: bytes  # (H, W) 8-bit RGB, exactly the attack's starting point
    probs: np.ndarray  # (K,)

    @property
    def source(self) -> int:
        return int(self.probs.argmax())


@dataclass(frozen=True)
class AttackChoice:
    """The picked attack, its parameter values as the widgets hold them, and the engine's instance."""

    name: str
    params: dict[str, float]
    attack: Attack | None  # None when a parameter is out of range (the error is on the page)
    confidence: float = 0.0  # the winning class (target, or any new top class) needs p >= this, 8-bit image
    problem: str | None = None  # why `attack` is None: the engine's one sentence


@dataclass(frozen=True)
class Blocker:
    """Why Run is off, said beside it (issue 20: a greyed button with its reason far below reads as broken), and
    the one-click fix where there is one."""

    sentence: str
    fix_label: str | None = None
    fix: Callable[[], None] | None = None


FALLBACK_ATTACK = "pgd"  # what an untargeted run of a targeted-only attack is offered instead


def _set_session(key: str, value: object) -> None:
    st.session_state[key] = value


def run_blocker(
    seen: ModelInput | None,
    target: state.TargetChoice,
    target_ok: bool,
    choice: AttackChoice,
    *,
    needs_nickname: bool = False,
) -> Blocker | None:
    """The first thing that keeps Run off, in words a class follows, or None when Run can go."""
    if needs_nickname:
        return Blocker("Type your nickname above (and press Enter) to play; then press Run.")
    if seen is None:
        return Blocker("Run needs an image the model can read: the setup below says what is wrong.")
    if not target_ok:
        source = IMAGENET_CATEGORIES[seen.source]
        return Blocker(
            f"The target is already the image's class ({source}): pick another target.",
            "Target: least likely class",
            lambda: _set_session(state.TARGET, state.LEAST_LIKELY),
        )
    aim = int(seen.probs.argmin()) if target == state.LEAST_LIKELY else target  # RANDOM is drawn at Run
    if getattr(choice.attack, "decision_based", False) and isinstance(aim, int):
        have = loaders.start_classes(seen.model_name)
        if aim not in have:
            title = ATTACKS[choice.name].title.split(" (")[0]
            names = ", ".join(IMAGENET_CATEGORIES[k] for k in have[:6]) + (", …" if len(have) > 6 else "")
            return Blocker(
                f"{title} sees only the top label, so a targeted run starts from a photo the model already calls "
                f"the target, and none ships for {IMAGENET_CATEGORIES[aim]}. Targets it can reach: {names}; or "
                "make it untargeted.",
                f"Target: {IMAGENET_CATEGORIES[have[0]]}" if have else "Make it untargeted",
                lambda: _set_session(state.TARGET, have[0] if have else state.UNTARGETED),
            )
    if choice.attack is None:
        cls = ATTACKS[choice.name]
        title = cls.title.split(" (")[0]
        if target == state.UNTARGETED and not cls.supports_untargeted:
            fallback = ATTACKS[FALLBACK_ATTACK].title.split(" (")[0]
            return Blocker(
                f"{title} needs a target class: pick one, or choose {fallback}, which can also just make the "
                "model wrong.",
                f"Switch to {fallback}",
                lambda: _set_session(state.ATTACK, FALLBACK_ATTACK),
            )
        return Blocker(f"These {title} settings cannot be used: {choice.problem or 'see the setup below'}.")
    return None


def _use_sample(sample_id: str) -> None:
    st.session_state[state.SOURCE] = state.SOURCES[0]
    st.session_state[state.IMAGE] = sample_id


def _apply_preset() -> None:
    """Pills callback: set image and target from the story, then clear the pill (a preset is an action)."""
    label = st.session_state.get(PRESET_KEY)
    preset = next((p for p in state.PRESETS if p.label == label), None)
    if preset is not None:
        _use_sample(preset.image)
        st.session_state[state.TARGET] = class_index(preset.target)
    st.session_state[PRESET_KEY] = None


def _short_name(sample_id: str) -> str:
    """Gallery label: the true label where known (ImageNet samples), else the title without its remark."""
    sample = SAMPLES[sample_id]
    if sample.label is not None:
        return IMAGENET_CATEGORIES[sample.label]
    return sample.title.split(" (")[0]


def _gallery(disabled: bool) -> None:
    """Square thumbnails of the shipped samples in a scrolling box; the button under each picks it."""
    chosen = st.session_state.get(state.IMAGE)
    st.caption("ImageNet samples are named by their true label.")
    with st.container(height=250, border=False):
        ids = list(SAMPLES)
        for row in range(0, len(ids), GALLERY_COLUMNS):
            cols = st.columns(GALLERY_COLUMNS, gap="small")
            for col, sample_id in zip(cols, ids[row : row + GALLERY_COLUMNS], strict=False):
                with col:
                    sample = SAMPLES[sample_id]
                    st.image(loaders.thumbnail_png(sample_id), width="stretch")
                    picked = sample_id == chosen
                    truth = f" — true label: {IMAGENET_CATEGORIES[sample.label]}" if sample.label is not None else ""
                    st.button(
                        "✓" if picked else "Use",
                        key=f"use-{sample_id}",
                        width="stretch",
                        type="primary" if picked else "secondary",
                        disabled=disabled,
                        on_click=_use_sample,
                        args=(sample_id,),
                        help=f"{sample.title}{truth}",
                    )
                    st.caption(_short_name(sample_id))


def setup_summary(fixed_image: str | None = None) -> str:
    """One line naming the current setup, for the label of the collapsed setup panel (`fixed_image`: the name of
    an image the page fixed, a classroom challenge's)."""
    session = st.session_state
    source = session.get(state.SOURCE)
    image = (
        fixed_image
        if fixed_image is not None
        else SAMPLES[session[state.IMAGE]].title
        if source == state.SOURCES[0] and session.get(state.IMAGE) in SAMPLES
        else ("your upload" if source == "Upload" else "a camera shot")
    )
    target = session.get(state.TARGET)
    goal = _target_label(target).lstrip("★ ") if target is not None else "?"
    model, attack = MODELS[session[state.MODEL]].title, ATTACKS[session[state.ATTACK]].title
    return f"**Setup:** {image} → {goal} · {model} · {attack}"


def image_picker(*, disabled: bool) -> ImageChoice | None:
    """Samples (searchable list + gallery), an upload or the camera; None until there is an image."""
    source = st.segmented_control("Image from", state.SOURCES, key=state.SOURCE, required=True, disabled=disabled)
    if source == "Upload":
        upload = st.file_uploader(
            "Upload an image (PNG, JPEG, WebP, …)", key=state.UPLOAD, disabled=disabled, max_upload_size=50
        )
        return None if upload is None else ImageChoice(name=upload.name, data=upload.getvalue())
    if source == "Camera":
        shot = st.camera_input("Take a picture", key=state.CAMERA, disabled=disabled)
        return None if shot is None else ImageChoice(name="camera", data=shot.getvalue())
    if not SAMPLES:
        st.error("No sample images are installed (scikit-image, scikit-learn or foolbox); upload an image instead.")
        return None
    sample_id = st.selectbox(
        "Sample", list(SAMPLES), key=state.IMAGE, format_func=lambda s: SAMPLES[s].title, disabled=disabled
    )
    _gallery(disabled)
    return ImageChoice(name=sample_id, sample_id=sample_id)


def model_picker(*, disabled: bool) -> str | None:
    """The model's registry name, or None (with the reason on the page) when its weights cannot be had."""
    name = st.selectbox(
        "Model",
        list(MODELS),
        key=state.MODEL,
        format_func=widgets.model_label,
        disabled=disabled,
        help=widgets.MODEL_HELP,
    )
    problem = loaders.model_problem(name)
    if problem:
        st.error(f"This model cannot be used: {problem}.")
        return None
    return name


def model_view(model_name: str | None, image: ImageChoice | None, *, exact: bool = False) -> ModelInput | None:
    """Show the image as the model sees it (resized and centre-cropped) with the model's top-5. `exact`: the
    image's bytes already are the model's 8-bit input (a classroom challenge's), used as they are."""
    st.markdown("**What the model sees**")
    if model_name is None or image is None:
        st.info("Pick an image and a model that can be loaded.")
        return None
    try:
        png = (
            image.data
            if exact and image.data is not None
            else loaders.model_input_png(model_name, image.sample_id, image.data)
        )
    except ImageError as err:
        st.error(f"This image cannot be used: {err}.")
        return None
    seen = ModelInput(model_name, loaders.get_model(model_name), png, loaders.probabilities(model_name, png))
    size = seen.model.input_size
    # an upload's file name, but not a sample's id ("chelsea"): the sample picker above names it in words
    named = f"{image.name} · " if image.sample_id is None else ""
    st.image(png, caption=f"{named}{size}×{size} pixels", output_format="PNG", width="stretch")
    if image.data is not None and not exact:
        with Image.open(io.BytesIO(image.data)) as raw:  # the header only: the upload was decoded and checked above
            w, h = raw.size
        if min(w, h) < size:
            st.caption(f"Your image is only {w}×{h} pixels: the model sees it enlarged to {size}×{size}.")
        widgets.first_frame_note(image.data)
    top = np.argsort(-seen.probs)[:5]
    # st.table, not st.dataframe: in a quarter of a 1366-px screen the canvas grid hid its p column at the right;
    # a table wraps a long class name instead and keeps every column in its frame.
    table = pd.DataFrame(
        {"class": [IMAGENET_CATEGORIES[i] for i in top], "p": [f"{100 * float(seen.probs[i]):.1f}%" for i in top]}
    )
    widgets.table(st, table)
    return seen


def _target_label(choice: state.TargetChoice) -> str:
    if choice == state.LEAST_LIKELY:
        return "★ least likely class"
    if choice == state.RANDOM:
        return "★ random class"
    if choice == state.UNTARGETED:
        return "★ untargeted: any other class"  # the key word first: a narrow box cuts the end
    name = IMAGENET_CATEGORIES[int(choice)]
    return f"{name} (#{choice})" if IMAGENET_CATEGORIES.count(name) > 1 else name


TARGET_OPTIONS: list[state.TargetChoice] = [*state.TARGET_SPECIALS, *range(len(IMAGENET_CATEGORIES))]


def target_picker(seen: ModelInput | None, *, disabled: bool) -> tuple[state.TargetChoice, bool]:
    """Story presets and a searchable list of all 1000 classes; returns (choice, valid)."""
    st.markdown("**Target class**")
    st.pills(
        "Stories",
        [p.label for p in state.PRESETS],
        key=PRESET_KEY,
        on_change=_apply_preset,
        disabled=disabled,
        help="Set up a classic: picks the image and the target.",
        width="stretch",
        wrap=True,
    )
    choice = st.selectbox(
        "Make the model see…",
        TARGET_OPTIONS,
        key=state.TARGET,
        format_func=_target_label,
        disabled=disabled,
        help="Type to search the 1000 ImageNet classes. The ★ choices at the top of the list: untargeted (any "
        "other class), the least likely class, a random class.",
    )
    if seen is None:
        return choice, False
    source_name = IMAGENET_CATEGORIES[seen.source]
    if isinstance(choice, int) and choice == seen.source:
        st.error(f"The target is the image's current class ({source_name}); pick another target.")
        return choice, False
    if choice == state.LEAST_LIKELY:
        st.caption(f"Least likely now: {IMAGENET_CATEGORIES[int(seen.probs.argmin())]}")
    elif isinstance(choice, int):
        st.caption("Or type ★ for untargeted, least likely or random.")
    return choice, True


#: Friendlier labels for the parameter names the attacks share; anything else is shown as its name.
PARAM_LABELS = {
    "max_rms": "Max change (RMS)",
    "step_size": "Step size",
    "steps": "Steps",
    "eps": "Budget ε",
    "random_start": "Random start (1 = yes)",
    "decay": "Momentum decay μ",
}


def param_input(param: Param, key: str, *, disabled: bool = False) -> float:
    """One attack parameter as a number input bounded by the Param's own range, with a friendly label and its help.

    Shared by the Attack Lab and the experiment pages, so an out-of-range value cannot be typed on any page and every
    page names the parameters alike. The default goes into st.session_state (never value=), so a link or a preset
    can set the widget without Streamlit's "default value and Session State" warning.
    """
    st.session_state.setdefault(key, int(param.default) if param.integer else float(param.default))
    label = param.label or PARAM_LABELS.get(param.name, param.name.replace("_", " ").capitalize())
    if param.unit and param.unit != "rms":
        label += f" ({param.unit})"
    if param.integer:
        return st.number_input(
            label, int(param.low), int(param.high), step=1, key=key, help=param.help, disabled=disabled
        )
    step = 10 ** np.floor(np.log10(abs(param.default))) / 2 if param.default else 0.1
    return st.number_input(
        label,
        float(param.low),
        float(param.high),
        step=float(step),
        format="%g",
        key=key,
        help=param.help,
        disabled=disabled,
    )


def _param_widget(attack: str, param: Param, disabled: bool) -> float:
    return param_input(param, state.param_key(attack, param.name), disabled=disabled)


def attack_label(name: str) -> str:
    """The attack's short name in the picker, marked when its attacker never sees the weights: a class can tell
    the query-only attacks from the gradient ones at a glance."""
    cls = ATTACKS[name]
    title = cls.title.split(" (")[0]
    if not issubclass(cls, BlackBoxAttack):
        return title
    return f"{title} · black-box"  # the caption under it says what it sees: the scores, or the top label


def attack_picker(target: state.TargetChoice, *, disabled: bool, names: list[str] | None = None) -> AttackChoice:
    """The attack, a one-line summary of it, and its parameters (two per row), checked by the engine. `names`: the
    attacks on offer (a classroom challenge's rule), default all."""
    name = st.selectbox(
        "Attack",
        names or list(ATTACKS),
        key=state.ATTACK,
        format_func=attack_label,  # the citation goes in the caption: it fits there
        disabled=disabled,
    )
    cls = ATTACKS[name]
    cite = cls.title.partition(" (")[2].rstrip(")")
    st.caption(f"{cite}: {cls.summary}" if cite else cls.summary)
    params: dict[str, float] = {}
    cols = st.columns(2, gap="small")
    for i, param in enumerate(cls.params):
        with cols[i % 2]:
            params[param.name] = _param_widget(name, param, disabled)
    untargeted = target == state.UNTARGETED
    confidence = st.slider(
        "Stop when the new top class reaches p" if untargeted else "Stop when p(target) reaches",
        0.0,
        0.99,
        step=0.01,
        key=state.CONFIDENCE,
        disabled=disabled,
        help="The run succeeds once the saved 8-bit image gives "
        + ("its new top class (any but the original's)" if untargeted else "the target")
        + " at least this probability, the CLI's --confidence rule. "
        "0 = as soon as it is the top class, however narrowly (the paper's criterion).",
    )
    try:
        attack = make_attack(name, **params)
        attack.check_targeted(target != state.UNTARGETED)
    except AttackError as err:
        st.error(f"These settings cannot be used: {err}.")
        return AttackChoice(name, params, None, confidence, problem=str(err))
    return AttackChoice(name, params, attack, confidence)
