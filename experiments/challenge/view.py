"""The classroom challenge on screen: the teacher's page (create, then the live board) and the Attack Lab's
challenge mode (a nickname, the locked setup, each finished run submitted and ranked).

Who sees what: the board and its controls need the teacher's link (`/challenge?code=…&key=…`, the key checked
by the store on every action); the students' link (`/?challenge=…`) carries only the code. Submissions are made
here, on the server, from the run's saved PNG, and scored afresh by experiments.challenge.challenge.score.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import serving
from experiments.challenge.challenge import RULE_TITLES, allowed_attacks, budget_params, budget_text, score
from experiments.challenge.store import (
    ALLOWED,
    BUDGET_RANGES,
    NICKNAME_MAX,
    Board,
    Challenge,
    ChallengeError,
    ChallengeStore,
    Entry,
    default_path,
)
from experiments.lab.record import RunRecord
from experiments.lab.steps import UNTARGETED, difference_image
from models import DEFAULT_MODEL, IMAGENET_CATEGORIES, MODELS, class_index
from ui import loaders, state, widgets

REFRESH_S = 3  # the board's refresh interval while it is shown
BEST_SHOWN = 3
DIFF_GAIN = 10
GALLERY_COLUMNS = 6

_KEY = "challenge.player_key"  # this browser session's secret: owns the nickname it claimed
_NICK = "challenge.nickname"  # code -> the nickname this session plays under
PLAYER_PARAM = "player"  # the URL parameter that carries the player key after joining (reloads keep the name)
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{24}")  # secrets.token_urlsafe(18)
_SUBMITTED = "challenge.submitted"  # run id -> entry id, or the sentence saying why it was not taken
_PRESET = "challenge.preset"  # the code whose budget was put into the attack's parameters


@lru_cache(maxsize=4)
def _store(path: str) -> ChallengeStore:
    return ChallengeStore(path)


def store() -> ChallengeStore:
    """The process's store of the configured database file (ADVLAB_CHALLENGE_DB)."""
    return _store(str(default_path()))


def _origin() -> str:
    """This server's address as the browser sees it (for the links a teacher copies)."""
    url = urllib.parse.urlsplit(st.context.url or "http://localhost:8501/")
    return f"{url.scheme}://{url.netloc}"


def students_link(code: str) -> str:
    return f"{_origin()}/?challenge={code}"


def teacher_link(code: str, token: str) -> str:
    return f"{_origin()}/challenge?code={code}&key={token}"


def goal_sentence(ch: Challenge) -> str:
    """What the class is asked to do, in one sentence."""
    source = IMAGENET_CATEGORIES[ch.source]
    goal = f"see **{IMAGENET_CATEGORIES[ch.target]}**" if ch.target is not None else "see anything but its class"
    sure = f" with at least {ch.confidence:.0%}" if ch.confidence else ""
    return f"Make {MODELS[ch.model].title} {goal}{sure} in this {source} picture, {budget_text(ch)}."


def _time_left(ch: Challenge) -> str:
    if not ch.is_open():
        return "closed"
    left = ch.seconds_left()
    return "open" if left is None else f"open · {int(left // 60)}:{int(left % 60):02d} left"


# ------------------------------------------------------------------------------------------------ the Lab's mode


@dataclass(frozen=True)
class LabMode:
    """The Attack Lab opened from a students' link: the fixed settings and who plays."""

    challenge: Challenge
    nickname: str | None
    player_key: str

    @property
    def attacks(self) -> list[str]:
        return allowed_attacks(self.challenge.allowed)

    @property
    def query(self) -> dict[str, str]:
        """The Lab's address in challenge mode: the code, and once joined this session's player key, so a reload
        plays on under the same nickname (the teacher's students' link never holds a key)."""
        joined = {PLAYER_PARAM: self.player_key} if self.nickname is not None else {}
        return {"challenge": self.challenge.code} | joined

    @property
    def target(self) -> int | str:
        return UNTARGETED if self.challenge.target is None else self.challenge.target


def lab_mode() -> LabMode | None:
    """The challenge this Lab session plays (`?challenge=CODE`), or None. An unknown code stops the page with
    one line and a way out."""
    code = st.query_params.get("challenge")
    if code is None:
        return None
    try:
        ch = store().get(code)
    except ChallengeError as err:
        widgets.error(err)
        st.page_link("pages/attack_lab.py", label="Open the Attack Lab without a challenge", icon=":material/home:")
        st.stop()
    session = st.session_state
    if _KEY not in session:  # a reload: the key in the student's own address keeps their nickname
        from_url = st.query_params.get(PLAYER_PARAM, "")
        session[_KEY] = from_url if _KEY_SHAPE.fullmatch(from_url) else secrets.token_urlsafe(18)
    key = session[_KEY]
    if ch.code not in session.get(_NICK, {}) and (claimed := store().nickname_of(ch.code, key)) is not None:
        session.setdefault(_NICK, {})[ch.code] = claimed
    if session.get(_PRESET) != ch.code:  # once per challenge: the budget into the attacks' own limits
        session[_PRESET] = ch.code
        for name in allowed_attacks(ch.allowed):
            for param, value in budget_params(ch, name).items():
                session[f"{name}-{param}"] = value
        session["confidence"] = ch.confidence  # stop where the challenge counts a success (0: the top class)
        if session.get("attack") not in allowed_attacks(ch.allowed):
            session["attack"] = allowed_attacks(ch.allowed)[0]
    session["model"] = ch.model
    session["target"] = UNTARGETED if ch.target is None else ch.target
    return LabMode(ch, session.get(_NICK, {}).get(ch.code), key)


def _join(code: str, key: str) -> None:
    """on_change of the nickname box: claim the name in the store (refused when someone else has it)."""
    typed = st.session_state.get("challenge.nick_input", "")
    try:
        name = store().join(code, typed, key)
    except ChallengeError as err:
        st.session_state["challenge.join_error"] = str(err)
        return
    st.session_state.pop("challenge.join_error", None)
    st.session_state.setdefault(_NICK, {})[code] = name
    # The nickname box gives way to "Playing as …": in that rerun the browser remounted some of the attack's number
    # boxes at their minimum (steps 1, max RMS 0.0001; seen in tests/e2e/test_challenge_walk.py under load) and sent
    # those with Run. Re-assigning the settings here makes that rerun send the server's values with the widgets.
    state.pin_values(state.setting_keys())


def lab_header(mode: LabMode, *, disabled: bool) -> Any:
    """The challenge's goal, the nickname box and the player's standing; returns a container for the last result."""
    ch = mode.challenge
    rule = RULE_TITLES[ch.allowed]
    playing = f" · Playing as **{mode.nickname}**" if mode.nickname is not None else ""
    st.info(
        f"**Challenge {ch.code}** · {goal_sentence(ch)} Allowed: {rule} · {_time_left(ch)}{playing}.",
        icon=":material/flag:",
    )  # one box, so the story (verdict, images, bars) keeps the first screen at 1366x768
    if mode.nickname is not None:
        return st.container()
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    left.text_input(
        "Your nickname",
        key="challenge.nick_input",
        max_chars=NICKNAME_MAX,
        placeholder="shown on the class board",
        disabled=disabled,
        on_change=_join,
        args=(ch.code, mode.player_key),
        help="Only a nickname: no other personal data. Press Enter to join.",
    )
    with right:  # the invitation itself is beside Run (ui.pickers.run_blocker); here only a refused name
        if problem := st.session_state.get("challenge.join_error"):
            widgets.error(problem)
        else:
            st.caption("Your nickname goes on the class board; press Enter to join.")
    return st.container()


def submit(mode: LabMode, record: RunRecord) -> None:
    """After a run ends: score its saved PNG on the server and add it to the board (failed runs have no image)."""
    if mode.nickname is None or record.status == "failed" or record.adversarial_png is None:
        return
    ch = mode.challenge
    outcome: int | str
    if record.status == "stopped" and len(record.steps) <= 1:  # steps[0] is the original: nothing was tried
        st.session_state.setdefault(_SUBMITTED, {})[record.run_id] = (
            "the run was stopped before its first step, so there is nothing to score; press Run again."
        )
        return
    try:
        model = loaders.get_model(ch.model)
        scored = serving.page_work(
            partial(
                score,
                ch,
                attack=record.attack_name,
                params=record.params,
                steps=max(len(record.steps) - 1, 0),
                queries=record.queries[-1] if record.queries else None,
                seconds=record.seconds,
            ),
            model,
            record.adversarial_png,
        )
        outcome = store().submit(ch.code, mode.nickname, mode.player_key, f"{mode.player_key}:{record.run_id}", scored)
    except ChallengeError as err:
        outcome = str(err)
    st.session_state.setdefault(_SUBMITTED, {})[record.run_id] = outcome


def lab_result(mode: LabMode, record: RunRecord | None, slot: Any) -> None:
    """What happened to the last run's submission, in one line, and the player's place on the board, kept up to
    date as classmates submit (from the store, so a reloaded page shows it too)."""
    if (record is not None and record.status == "running") or mode.nickname is None:
        return
    outcome = None if record is None else st.session_state.get(_SUBMITTED, {}).get(record.run_id)
    with slot:
        if isinstance(outcome, str):
            widgets.error(f"Not submitted: {outcome}")
            outcome = None
        _standing(mode.challenge.code, mode.nickname, outcome)


@st.fragment(run_every=REFRESH_S)
def _standing(code: str, nickname: str, entry_id: int | None) -> None:
    """The last run's submission (its verdict is the story's, so here only what the board made of it) and "you are
    #k of n on the board", in one line redrawn every few seconds on its own (the rest of the page stays put)."""
    try:
        standing = store().rank(code, nickname)
        entry = next((e for e in store().entries(code) if e.id == entry_id), None) if entry_id is not None else None
        challenge = store().get(code)
    except ChallengeError:  # deleted meanwhile: the next full rerun says so
        return
    place = f"You are **#{standing[0]} of {standing[1]}** on the board." if standing is not None else ""
    if entry is not None:
        head = _entry_head(entry, challenge)
        (st.success if entry.success else st.warning)(f"Submitted: {head}. {place}", icon=":material/how_to_reg:")
    elif place:
        st.markdown(f":material/leaderboard: {place}")


def _entry_head(e: Entry, ch: Challenge) -> str:
    """What the board made of an entry (the verdict's numbers are in the story above it)."""
    if e.success:
        return "fooled the model within the budget"
    if e.fooled:
        return f"fooled the model but over the budget ({budget_text(ch)})"
    return "did not fool the model"


# ------------------------------------------------------------------------------------------------ the teacher's page


def page() -> None:
    """The teacher's page: the form without a code; the board with the teacher's link; else one line why not."""
    code, key = st.query_params.get("code"), st.query_params.get("key")
    if code is None:
        _create_form()
        return
    try:
        ch = store().get(code)
    except ChallengeError as err:
        widgets.error(err)
        if st.button("Make a new challenge", icon=":material/add:"):
            st.query_params.clear()
            st.rerun()
        return
    if key is None or not store().is_teacher(ch.code, key):
        if key is not None:
            widgets.error("this is not the teacher's link for this challenge (wrong key): the board stays closed")
        else:
            st.info("The board and its controls open from the teacher's link only.")
        st.markdown(f"Students: play in the Attack Lab, at [{students_link(ch.code)}]({students_link(ch.code)}).")
        return
    _teacher_controls(ch, key)
    _board(ch.code)


def _create_form() -> None:
    st.markdown(
        "Set one image, model, target and budget; every student attacks it in the Attack Lab from one link, and "
        "the server scores each saved image on this board."
    )
    col_image, col_goal, col_rules = st.columns([1.2, 1, 1], gap="medium")
    with col_image:
        st.markdown("**1 · Image**")
        picked = widgets.image_select("ch.image")
    with col_goal:
        st.markdown("**2 · Model and target**")
        st.session_state.setdefault("ch.model", DEFAULT_MODEL)
        model = st.selectbox("Model", widgets.usable_models(), key="ch.model", format_func=widgets.model_label)
        st.session_state.setdefault("ch.target", class_index("umbrella"))
        target = st.selectbox(
            "Make the model see…",
            [-1, *range(len(IMAGENET_CATEGORIES))],
            key="ch.target",
            format_func=lambda c: "any other class (untargeted)" if c == -1 else widgets.class_name(c),
            help="Type to search the 1000 ImageNet classes.",
        )
    with col_rules:
        st.markdown("**3 · Rules**")
        kind = st.segmented_control(
            "Budget",
            ["rms", "linf"],
            key="ch.kind",
            default="rms",
            required=True,
            format_func=lambda k: "RMS distortion" if k == "rms" else "L-inf (1/255)",
        )
        low, high = BUDGET_RANGES[kind]
        budget = st.number_input(
            "Largest RMS distortion" if kind == "rms" else "Largest change of a pixel (1/255)",
            low,
            high,
            value=0.01 if kind == "rms" else 8.0,
            key=f"ch.budget.{kind}",
            format="%g",
            help="An entry counts only when the saved image stays within this (paper: RMS 0.01).",
        )
        allowed = st.selectbox("Attacks allowed", ALLOWED, key="ch.allowed", format_func=RULE_TITLES.get)
        confidence = st.slider(
            "Also needs p ≥ (0: top class is enough)",
            0.0,
            0.99,
            value=0.0,
            step=0.01,
            key="ch.confidence",
            help="0 = as soon as the target (untargeted: any new class) is the top class, the paper's criterion.",
        )
        minutes = st.number_input("Time limit (minutes, 0 = none)", 0, 240, value=0, key="ch.minutes")
    seen = None
    if picked is not None:
        try:
            png = loaders.model_input_png(model, picked.sample_id, picked.data)
        except ChallengeError as err:  # pragma: no cover - image_select already checked the image
            widgets.error(err)
            png = None
        if png is not None:
            probs = loaders.probabilities(model, png)
            seen = (png, int(probs.argmax()), float(probs.max()))
            with col_image:
                st.image(
                    png,
                    output_format="PNG",
                    width=180,
                    caption=f"The model sees {IMAGENET_CATEGORIES[seen[1]]} ({seen[2]:.0%})",
                )
    target_idx = None if target == -1 else int(target)
    problem = None
    if seen is None:
        problem = "pick an image the model can use"
    elif target_idx == seen[1]:
        problem = f"the target is the image's own class ({IMAGENET_CATEGORIES[seen[1]]}); pick another"
    with col_rules:
        if problem:
            widgets.error(problem)
        if st.button(
            "Create the challenge",
            key="ch-create",
            type="primary",
            icon=":material/flag:",
            disabled=problem is not None,
            width="stretch",
        ):
            try:
                code, token = store().create(
                    image_png=seen[0],
                    image_name=picked.name,
                    model=model,
                    source=seen[1],
                    target=target_idx,
                    budget_kind=kind,
                    budget=budget,
                    allowed=allowed,
                    time_limit_min=minutes or None,
                    confidence=confidence,
                )
            except ChallengeError as err:
                widgets.error(err)
                return
            st.query_params.from_dict({"code": code, "key": token})
            st.rerun()


def _teacher_controls(ch: Challenge, key: str) -> None:
    """The teacher's links and buttons (every action checks the key again in the store)."""
    s = store()
    left, right = st.columns([3, 2], vertical_alignment="center")
    with left:
        st.markdown(f"### Challenge **{ch.code}** · {_time_left(ch)}")
        st.markdown(goal_sentence(ch))
        st.markdown(f"Students open **{students_link(ch.code)}**")
    with right:
        c1, c2, c3 = st.columns(3)
        is_open = ch.is_open()
        if c1.button(
            "Close" if is_open else "Reopen",
            icon=":material/lock:" if is_open else ":material/lock_open:",
            width="stretch",
            key="ch.close",
        ):
            s.close(ch.code, key, closed=is_open)
            st.rerun()
        if c2.button(
            "Hide all" if ch.revealed else "Reveal all", icon=":material/visibility:", width="stretch", key="ch.reveal"
        ):
            s.reveal(ch.code, key, revealed=not ch.revealed)
            st.rerun()
        c3.download_button(
            "CSV",
            lambda: s.csv(ch.code),
            file_name=f"challenge_{ch.code}.csv",
            mime="text/csv",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
            key="ch.csv",
        )
        with st.popover("Teacher's link · delete", width="stretch"):
            st.caption("Keep this link to yourself: it alone opens this board and its controls.")
            st.code(teacher_link(ch.code, key), language=None, wrap_lines=True)
            if st.button("Delete the challenge and every entry", type="primary", key="ch.delete"):
                s.delete(ch.code, key)
                st.query_params.clear()
                st.rerun()


def board_table(board: Board) -> pd.DataFrame:
    """The ranked rows as the board shows them (and tests recompute): few, short columns, so all fit a projector."""
    rows = []
    for rank, e in enumerate(board.entries, 1):
        result = f"✓ {e.label}" if e.success else (f"✗ {e.label}, over budget" if e.fooled else f"✗ {e.label}")
        work = f"{e.steps} steps" if e.queries is None else f"{e.queries} queries"
        rows.append(
            {
                "#": rank,
                "nickname": e.nickname,
                "seen as": result,
                "RMS": e.rms,
                "max": f"{e.linf_255}/255",
                "work": work,
                "time": f"{e.seconds:.0f} s",
                "runs": e.tries,
            }
        )
    return pd.DataFrame(rows, columns=["#", "nickname", "seen as", "RMS", "max", "work", "time", "runs"])


#: Column widths (px) that add up to less than the table's part of a 1366-px screen with the sidebar open.
_WIDTHS = {"#": 30, "nickname": 104, "seen as": 122, "RMS": 60, "max": 50, "work": 78, "time": 44, "runs": 40}


@st.fragment(run_every=REFRESH_S)
def _board(code: str) -> None:
    """The live board: counts, the ranked table, the best few side by side, and the gallery once revealed."""
    try:
        board = store().board(code)
    except ChallengeError as err:
        widgets.error(err)
        return
    ch = board.challenge
    m = st.columns(4)
    m[0].metric("Students who submitted", board.tried)
    m[1].metric("Fooled within the budget", f"{board.fooled} of {board.tried}")
    m[2].metric("Smallest RMS that worked", "—" if board.smallest_rms is None else f"{board.smallest_rms:.4f}")
    m[3].metric("Runs submitted", board.submissions)
    table, best = st.columns([1.6, 1], gap="medium")
    with table:
        st.dataframe(
            board_table(board),
            hide_index=True,
            width="stretch",
            height=min(36 + 35 * max(len(board.entries), 1), 420),
            column_config={
                **{name: st.column_config.Column(width=w) for name, w in _WIDTHS.items()},
                "RMS": st.column_config.NumberColumn(format="%.4f", width=_WIDTHS["RMS"]),
            },
        )
        st.caption(
            "Ranked by success within the budget (the server's verdict on each saved 8-bit image), then the smallest "
            f"RMS distortion, then who was first; each student's best run. Refreshes every {REFRESH_S} s."
        )
    with best:
        winners = [e for e in board.entries if e.success][:BEST_SHOWN]
        if not winners:
            st.info("The best entries appear here: original · adversarial · difference ×10.")
        else:
            st.markdown(f"**The best {len(winners)}** · original · adversarial · difference ×{DIFF_GAIN}")
        original = _array(ch.image_png)
        for rank, e in enumerate(winners, 1):
            png = store().image(code, e.id)
            if png is None:
                continue
            diff = loaders.to_png(difference_image(original, _array(png), DIFF_GAIN))
            cols = st.columns(3, gap="small")
            cols[0].image(ch.image_png, output_format="PNG", width="stretch")
            cols[1].image(png, output_format="PNG", width="stretch", caption=f"#{rank} {e.nickname} · RMS {e.rms:.4f}")
            cols[2].image(diff, output_format="PNG", width="stretch")
    if ch.revealed and board.entries:
        st.markdown("##### Every student's best image")
        for row in range(0, len(board.entries), GALLERY_COLUMNS):
            cols = st.columns(GALLERY_COLUMNS, gap="small")
            for col, e in zip(cols, board.entries[row : row + GALLERY_COLUMNS], strict=False):
                png = store().image(code, e.id)
                if png is not None:
                    mark = "✓" if e.success else "✗"
                    col.image(png, output_format="PNG", width="stretch", caption=f"{mark} {e.nickname} · {e.label}")


def _array(png: bytes) -> np.ndarray:
    return np.asarray(loaders.from_png(png), dtype=np.uint8)  # (H, W, 3)
