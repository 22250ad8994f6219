"""A long job on a page: start, Stop, a drawing throttle, resuming after an unrelated rerun, and no page left busy.

Every page with a Run button uses this module and nothing else to run its work::

    from ui import run

    job = run.job("exp.demo.job")                      # first thing on the page: settles a run that ended elsewhere
    steps = st.number_input("Steps", 1, 500, key="exp.demo.steps", disabled=job.busy)
    run.buttons(job, prefix="exp.demo.", ready=True)   # Run (asks for a run) and Stop (asks it to end)
    line = st.empty()

    def work():                                        # a generator: what it yields is what gets drawn
        for i in range(steps):
            job.data["reached"] = i                    # partial results live in job.data: a Stop keeps them
            yield i

    run.drive(job, work, run.Draw(lambda i: line.write(f"step {i}")))
    run.show_notes(job)                                # why it stopped, what failed
    if "reached" in job.data: ...                      # the result, drawn after the run

How it works. Run's on_click marks the job "requested" (and pins the settings, see ui.state.pin_values); the script
run that follows builds the work with `start()` and keeps the generator in the job (st.session_state). `drive` pulls
items, makes a Streamlit yield point after each (a Session State lookup), and calls each Draw when its Throttle says
so. Any rerun (Streamlit's runner.fastReruns) ends the running script at its next yield point and starts a new one
at once; the job's baton (a lock held while a script run drives it) tells the new run whether the old one is still
unwinding. The new run waits for it (a blocking lock wait, at most one step), then:

- the page's Stop was pressed (its on_click set `stop_requested`): the job ends "stopped" and keeps job.data;
- otherwise the work is a suspended (or not yet started) generator: it resumes where it was (an unrelated rerun: a
  slider, a page switch, one landing before the first step);
- otherwise (its generator was closed by the interruption): the job ends "stopped", keeping job.data.

Streamlit's toolbar Stop, a closed tab or an exception ends the script without any rerun. While a job runs, an
invisible fragment (`run_every`) watches it: once no script run holds the baton, it marks the job stopped and reruns
the page, which then draws itself usable. An exception in the work ends the job "failed" with a note.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Generic, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from ui.pacing import Throttle
from ui.state import pin_values
from ui.widgets import error

T = TypeVar("T")
_LOG = logging.getLogger(__name__)
HANDOVER_WAIT_S = 30.0  # longest wait for an interrupted run to reach its next yield point (one attack step)
WATCH_EVERY_S = 1.0  # how often the watchdog looks at a running job


def _load_libc() -> Any:
    """glibc, when this process runs on it (Linux, Streamlit Community Cloud); None elsewhere (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def return_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim). An attack's activations are freed by
    torch when it ends, but glibc keeps the pages for reuse: about 230 MiB after one Lite0 run, most of a Cloud
    container's headroom (benchmarks/bench_cloud.py). Called whenever a job ends."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@dataclass
class Draw(Generic[T]):
    """One part of a page's live view: `paint(item)` whenever its throttle allows. No final paint is needed: when
    the work ends the page is rerun and draws the result from what the work stored."""

    paint: Callable[[T], None]
    throttle: Throttle = field(default_factory=Throttle)


@dataclass
class Timing:
    """perf_counter accounting of one job, for the status line and benchmarks/bench_ui.py."""

    clicked: float = 0.0  # perf_counter() in Run's callback, i.e. when the click reached the server
    first_update: float | None = None  # seconds from the click to the first drawing
    work: float = 0.0  # seconds inside the work's generator
    render: float = 0.0  # seconds drawing
    active: float = 0.0  # wall seconds of the loop (work + drawing)

    @property
    def render_fraction(self) -> float:
        return self.render / self.active if self.active else 0.0


@dataclass
class Job:
    """A page's long job in st.session_state. `data` is the page's: partial results go there as they are reached.

    status: idle | requested | running | finished | stopped | failed. `kind` names what was asked for (one page can
    have several actions, e.g. "run" and "compare").
    """

    key: str
    status: str = "idle"
    kind: str | None = None
    stop_requested: bool = False
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level, text): "warning" | "error"
    data: dict[str, Any] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    work: Iterator[Any] | None = field(default=None, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)  # the plain setting values pinned at Run (see `stale`)
    baton: threading.Lock = field(default_factory=threading.Lock, repr=False)  # held by the driving script run

    @property
    def busy(self) -> bool:
        """A run is asked for or going on: the page draws its settings and Run disabled."""
        return self.status in ("requested", "running")

    @property
    def ended(self) -> bool:
        return self.status in ("finished", "stopped", "failed")

    def note(self, level: str, text: str) -> None:
        self.notes.append((level, text))

    def end(self, status: str) -> None:
        """Plain data only: safe in a `finally` after Streamlit has stopped the script."""
        self.status = status
        self.work = None  # the generator and the tensors it held go now
        return_free_memory()

    def _resumable(self) -> bool:
        """A generator paused at a yield, or built and not started yet: a rerun that lands between Run's script
        run building the work and its first step (a nickname's Enter, a fragment) must not end the run at step 0."""
        if self.work is None:
            return False
        if not inspect.isgenerator(self.work):
            return True  # a plain iterator: nothing can close it mid-step
        return inspect.getgeneratorstate(self.work) in (inspect.GEN_CREATED, inspect.GEN_SUSPENDED)


def job(key: str) -> Job:
    """The page's job (created idle). Call first on the page: a run that another script run was driving is waited
    for (it stops at its next step), and one that nobody drives any more is settled, so `busy` is true only while a
    run really goes on."""
    state: Job = st.session_state.setdefault(key, Job(key))
    if state.status != "running":
        return state
    if state.baton.locked():  # the interrupted script run is still unwinding: wait for its next yield point
        with st.spinner("Stopping the run…" if state.stop_requested else "One moment…"):
            if state.baton.acquire(timeout=HANDOVER_WAIT_S):
                state.baton.release()
    if state.stop_requested or not state._resumable():
        state.end("stopped")
    return state


def request_start(key: str, kind: str = "run", settings: Iterable[str] = ()) -> None:
    """on_click of a Run button: ask for a run. `settings`: the widget keys to pin (see ui.state.pin_values)."""
    settings = list(settings)
    pin_values(settings)
    state: Job = st.session_state.setdefault(key, Job(key))
    state.status, state.kind, state.stop_requested, state.notes, state.data = "requested", kind, False, [], {}
    plain = (str, int, float, bool, type(None))  # widget values: text, numbers, choices and lists of them
    values = {k: st.session_state.get(k) for k in settings}
    state.settings = {
        k: v
        for k, v in values.items()
        if isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))
    }
    state.timing = Timing(clicked=perf_counter())


def request_stop(key: str) -> None:
    """on_click of a Stop button: the run ends at its next step and keeps what it reached."""
    state: Job | None = st.session_state.get(key)
    if state is not None and state.busy:
        state.stop_requested = True


def page_settings(prefix: str, buttons: Iterable[str] = ()) -> list[str]:
    """The keys under `prefix` that a callback may set: all but the Run/Stop pair, the page's other `buttons` and
    file uploaders ("<key>.upload"), which Session State cannot set."""
    skip = {prefix + "run", prefix + "stop", *buttons}
    return [
        name
        for name in list(st.session_state.keys())
        if isinstance(name, str) and name.startswith(prefix) and name not in skip and not name.endswith(".upload")
    ]


def buttons(
    state: Job,
    *,
    prefix: str = "",
    ready: bool,
    settings: Iterable[str] | None = None,
    other_buttons: Iterable[str] = (),
    stop_help: str = "Ends the run at the next step; what it reached stays.",
    columns: Any = None,
    scheduled: bool = False,
) -> None:
    """Run and Stop side by side, keyed `<prefix>run` and `<prefix>stop`. Run asks for a run, pinning `settings`
    (default: every key under `prefix` but `other_buttons`); it is off during a run or when the settings are not
    `ready`. Stop is on only during a run. `columns`: two containers to draw them in (default: two new columns).
    `scheduled`: this page's runs go through serving's step scheduler, which batches them and says a queued run's
    place itself, so the busy caption counts only other pages' runs (those do share the CPU with it)."""
    run_col, stop_col = columns if columns is not None else st.columns(2, gap="small")
    pinned = list(settings) if settings is not None else page_settings(prefix, other_buttons) if prefix else []
    run_col.button(
        "Run",
        key=prefix + "run",
        type="primary",
        icon=":material/play_arrow:",
        width="stretch",
        disabled=state.busy or not ready,
        on_click=request_start,
        args=(state.key, "run", pinned),
    )
    stop_col.button(
        "Stop",
        key=prefix + "stop",
        icon=":material/stop:",
        width="stretch",
        disabled=not state.busy,
        help=stop_help,
        on_click=request_stop,
        args=(state.key,),
    )
    busy_note(batched=state.key if scheduled else None)


@st.fragment(run_every=WATCH_EVERY_S)
def _watchdog(key: str) -> None:
    """Runs on its own while a job runs: a job that no script run drives any more (toolbar Stop, closed tab) is
    over, and the whole page is rerun so it draws itself usable."""
    ctx = get_script_run_ctx()
    if ctx is None or not ctx.fragment_ids_this_run:
        return  # drawn inline by the driving run itself
    state: Job | None = st.session_state.get(key)
    if state is None or state.status != "running":
        return
    if not state.baton.locked():
        state.stop_requested = True
        st.rerun(scope="app")


def drive(state: Job, start: Callable[[], Iterator[T]], *draws: Draw[T]) -> None:
    """Start the work if Run asked for it, or resume it; pull items, keeping a Streamlit yield point after each,
    and paint each Draw on its throttle. When the work ends the page is rerun, so it draws itself idle."""
    if state.status == "requested":
        state.status = "running"
        try:
            state.work = iter(start())
        except Exception as err:  # a bad setting found while building the work: one note, the page stays usable
            _fail(state, err)
            st.rerun()
    if state.status != "running" or state.work is None:
        return
    if not state.baton.acquire(blocking=False):
        return  # another script run of this session drives it
    running = _running_now()
    me = _run_id(state)
    try:
        with running.lock:
            running.ids.add(me)
        _watchdog(state.key)
        _loop(state, state.work, draws)
    finally:
        with running.lock:
            running.ids.discard(me)
        state.baton.release()
    st.rerun()


@dataclass
class _Running:
    """The runs being driven now in this server process, by every browser session (for `busy_note`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: set[str] = field(default_factory=set)


@st.cache_resource(show_spinner=False)
def _running_now() -> _Running:
    return _Running()


def _session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def _run_id(state: Job) -> str:
    return f"{_session_id()}/{state.key}"


def running_count() -> int:
    """Runs being driven now in this server process, by every session (this one's included)."""
    running = _running_now()
    with running.lock:
        return len(running.ids)


def busy_note(batched: str | None = None) -> None:
    """A caption when other sessions are running attacks now: on a shared server (Streamlit Community Cloud, a
    classroom) their runs share the CPU with this one, so it will be slower, not stuck. Counted as this script run
    starts; nothing is shown when the server is free. `batched`: a job key whose runs share the scheduler's batches
    with this one (not counted: they queue, and the queue says so)."""
    running = _running_now()
    mine = _session_id() + "/"
    with running.lock:
        others = sum(not r.startswith(mine) and r.split("/", 1)[-1] != batched for r in running.ids)
    if others:
        runs = "another run" if others == 1 else f"{others} other runs"
        st.caption(f":material/hourglass_top: The server is busy: {runs} going on now, so yours may be slower.")


def _loop(state: Job, work: Iterator[T], draws: tuple[Draw[T], ...]) -> None:
    t = state.timing
    unpainted: list[tuple[Draw[T], T]] = []  # the last item each Draw's throttle skipped
    while True:
        t0 = perf_counter()
        try:
            item = next(work)
        except StopIteration:
            t.active += perf_counter() - t0
            for draw, last in unpainted:  # the end is always drawn, however soon after the previous draw it came
                _paint(t, draw, last, force=True)
            state.end("finished")
            break
        except Exception as err:  # the work failed: say so on the page instead of leaving it busy
            _fail(state, err)
            return
        t1 = perf_counter()
        t.work += t1 - t0
        t.active += t1 - t0
        _ = state.key in st.session_state  # a Streamlit yield point: a Stop or a rerun takes effect here
        unpainted = [(draw, item) for draw in draws if not _paint(t, draw, item)]


def _paint(t: Timing, draw: Draw[T], item: T, *, force: bool = False) -> bool:
    """Paint `item` when the Draw's throttle allows (or `force`); True when it was painted."""
    now = perf_counter()
    if force or draw.throttle.due(now):
        draw.paint(item)
        end = perf_counter()
        draw.throttle.spent(now, end, t.active)
        t.render += end - now
        t.active += end - now
        if t.first_update is None:
            t.first_update = end - t.clicked
        return True
    return False


def progress(state: Job, draw: Draw[T]) -> Callable[[T], None]:
    """An on_step callback for work that reports progress through a callback instead of yielding (an experiment
    running an attack to its end): a Streamlit yield point on every call, so Stop takes effect within one step, and
    `draw` painted on its throttle. A Stop here ends the work's generator, so that run is over, not resumable."""

    def on_step(item: T) -> None:
        _ = state.key in st.session_state  # a Streamlit yield point
        _paint(state.timing, draw, item)

    return on_step


def _fail(state: Job, err: Exception) -> None:
    _LOG.warning("job %s failed", state.key, exc_info=err)
    state.note("error", str(err) or type(err).__name__)
    state.end("failed")


STALE = ":material/history: This is your last run's result; the settings have changed since: press **Run** to try them."


def stale(state: Job, ignore: Iterable[str] = ()) -> bool:
    """A finished (or stopped) run's result is on the page but a setting pinned at its Run holds another value now
    (a walk: another sample left the old result with nothing saying so). Keys starting with one of `ignore` (the
    result's own display widgets) and a setting whose widget is gone from the page (another mode's) do not count."""
    now, skip = st.session_state, tuple(ignore)
    return state.ended and any(
        k in now and now[k] != v for k, v in state.settings.items() if not (skip and k.startswith(skip))
    )


def show_notes(state: Job, *, stale_unless: Iterable[str] | None = None) -> None:
    """What a run left to say: where it stopped (the page's `data["stopped"]` sentence, kept up to date by its
    work), then its notes: warnings as st.warning, errors as one st.error sentence each. `stale_unless` (a page
    whose result is one run's, naming the keys of the result's own display widgets): first, one line when the
    settings have changed since its Run (`stale`)."""
    if stale_unless is not None and stale(state, stale_unless):
        st.caption(STALE)
    if state.status == "stopped":
        st.warning(state.data.get("stopped", "Stopped: what had finished is shown."), icon=":material/stop_circle:")
    for level, text in state.notes:
        if level == "error":
            error(text)
        else:
            st.warning(text, icon=":material/info:")
