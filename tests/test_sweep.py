"""The sweep engine and its store: resume after Stop or kill -9 gives exactly the uninterrupted rows, no duplicates,
another study's or another program's database is refused with one line, and rows agree with the attack runner."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from sweep_worker import one_torch_thread, rows_key, tiny_image_set, tiny_study
from tinynet import TinyClassifier

from attacks import AttackError
from attacks.runner import attack_targets
from experiments.study.store import Row, StoreError, SweepStore
from experiments.study.sweep import Study, iter_units, plan_pairs, run_sweep, run_unit
from images.imagesets import Selection
from models import pil_to_tensor

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "sweep_worker.py"
_COUNT = "SELECT COUNT(*), COUNT(DISTINCT image_id || '/' || target) FROM rows"


@pytest.fixture(scope="module")
def model() -> TinyClassifier:
    return TinyClassifier()


one_thread = pytest.fixture(one_torch_thread)
_key = rows_key


def _sweep(
    model: TinyClassifier,
    db: Path,
    study: Study | None = None,
    chunk: int = 2,
    stop_after: int | None = None,
    refill: bool = True,
):
    study = study or tiny_study(model)
    seen = []
    with SweepStore.open(db, study.params()) as store:
        sweep = run_sweep(model, tiny_image_set(model), study, store, chunk=chunk, refill=refill)
        for progress in sweep:
            seen.append(progress)
            if stop_after is not None and sum(p.stage == "attack" for p in seen) >= stop_after:
                sweep.close()  # what Stop or Ctrl-C does to the generator
                break
        return seen, store.rows()


def test_sweep_rows_are_complete_verified_and_leave_out_the_wrong_image(model, tmp_path, one_thread):
    seen, rows = _sweep(model, tmp_path / "a.db")
    plan = next(p for p in seen if p.stage == "plan")
    assert "left out 1 that the model already gets wrong" in plan.message
    assert plan.done == 0 and plan.total == 5 * 9  # five kept images, each toward the nine other classes
    assert seen[-1].done == seen[-1].total == len(rows) == 45
    assert len({(r.image_id, r.target) for r in rows}) == 45
    assert "img5" not in {r.image_id for r in rows}  # labelled with a class the model does not give it
    assert all(r.source != r.target for r in rows)
    assert 0 < sum(r.success for r in rows) < len(rows)
    for r in rows:  # a success is the target on top within the cap; a failure is not
        assert r.success == (r.final_class == r.target and r.rms <= 0.03)
        assert 0.0 <= r.linf and r.rms <= r.linf + 1e-9


def test_keeping_wrong_images_attacks_them_from_their_true_label(model, tmp_path, one_thread):
    study = tiny_study(model, selection=Selection(drop_wrong=False))
    _, rows = _sweep(model, tmp_path / "b.db", study)
    wrong = [r for r in rows if r.image_id == "img5"]
    label = tiny_image_set(model).items[5].label
    predicted = int(model(pil_to_tensor(tiny_image_set(model).load(tiny_image_set(model).items[5]))).argmax())
    assert {r.source for r in wrong} == {label} and predicted != label
    # Regression (issue 17 item 11): the class the model already gives a wrong image is no target (it was a
    # success at step 0 with no change): nine other classes less that one.
    assert len(wrong) == 8 and predicted not in {r.target for r in wrong}


def _one_image_unit(model):
    """(study, image set, its first image, the nine other classes, one unit of those nine pairs)."""
    study = tiny_study(model)
    image_set = tiny_image_set(model)
    item = image_set.items[0]
    targets = [t for t in range(10) if t != item.label]
    unit = next(iter_units(model, image_set, plan_pairs([_screened(item)], targets), chunk=9))
    return study, image_set, item, targets, unit


def test_rows_agree_with_the_attack_runner(model, one_thread):
    """The same image toward the same targets through attacks.runner.attack_targets (which verifies each PIL
    image it saves) gives the same verdicts, iterations and distortions."""
    study, image_set, item, targets, unit = _one_image_unit(model)
    rows = run_unit(model, unit, study)
    attack = study.make_attack()
    results = attack_targets(model, image_set.load(item), attack, targets, confidence=study.confidence, chunk=9)
    assert [r.success for r in rows] == [a.success for a in results]
    assert [r.iterations for r in rows] == [a.iterations for a in results]
    assert [r.rms for r in rows] == pytest.approx([a.verdict.rms_distortion for a in results], abs=1e-6)
    assert [r.final_class for r in rows] == [a.verdict.index for a in results]


def test_a_black_box_sweep_stores_the_queries_of_each_pair(model, tmp_path, one_thread):
    """Square through the sweep: every row holds the queries its pair spent (within the budget), the same as the
    attack runner counts for that image and target; a white-box study's rows hold none."""
    square = {"eps": 48.0, "queries": 60}
    study = tiny_study(model, attack="square", attack_params=square, targets="random:3", max_rms=0.5)
    _, rows = _sweep(model, tmp_path / "square.db", study)
    assert rows and all(r.queries is not None and 1 <= r.queries <= 60 for r in rows)
    assert any(r.success for r in rows) and any(r.queries < 60 for r in rows)  # early stops spend less
    image_set = tiny_image_set(model)
    item = image_set.items[0]
    mine = [r for r in rows if r.image_id == item.id]
    results = attack_targets(
        model, image_set.load(item), study.make_attack(), [r.target for r in mine], confidence=0.0, seed=study.seed,
        seed_keys=(item.id,),
    )  # fmt: skip
    assert [r.queries for r in mine] == [a.queries for a in results]
    assert [r.success for r in mine] == [a.success and a.verdict.rms_distortion <= 0.5 for a in results]
    _, white = _sweep(model, tmp_path / "relabel.db", tiny_study(model, targets="random:2"))
    assert white and all(r.queries is None for r in white)


def test_a_decision_based_attack_is_refused_by_the_sweep_with_one_line(model):
    with pytest.raises(AttackError, match="decision-based") as err:
        tiny_study(model, attack="hopskipjump", attack_params={})
    assert "\n" not in str(err.value) and "cli.py attack --attack hopskipjump --target" in str(err.value)


def test_a_file_from_before_the_queries_column_reads_and_resumes(model, tmp_path, one_thread):
    """Rows written before `queries` existed read as None (a read leaves the file alone); opening it to resume
    adds the column, and the new rows hold their counts."""
    db = tmp_path / "old.db"
    study = tiny_study(model, attack="square", attack_params={"eps": 48.0, "queries": 30}, targets="random:2")
    _sweep(model, db, study, stop_after=1)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE rows DROP COLUMN queries")
    with SweepStore.read(db) as store:
        old = store.rows()
    assert old and all(r.queries is None for r in old)
    with sqlite3.connect(db) as conn:
        assert "queries" not in {c[1] for c in conn.execute("PRAGMA table_info(rows)")}
    _, rows = _sweep(model, db, study)
    new = [r for r in rows if r not in old]
    assert set(old) <= set(rows) and new and all(r.queries is not None for r in new)


def test_random_start_rows_do_not_depend_on_the_unit(model, tmp_path, one_thread):
    """Regression (issue 17 item 6): PGD's start noise was drawn for the whole batch, so a pair's row changed with
    its place in a unit (chunk 2 vs 9 on this net: 45 of 45 rows differed). Each pair now draws from its own seed
    (image id and target), and the runner's many-target run with the same seed keys gives the same row."""
    study = tiny_study(model, attack="pgd", attack_params={"eps": 8.0, "step_size": 2.0, "steps": 8})
    _, small = _sweep(model, tmp_path / "c2.db", study, chunk=2)
    _, large = _sweep(model, tmp_path / "c9.db", study, chunk=9)
    a, b = _key(small), _key(large)
    # ids, targets, verdicts, iterations and final classes equal; floats to float32 batched-sum rounding (1e-5)
    assert [(r[0], r[2], r[3], r[4], r[8]) for r in a] == [(r[0], r[2], r[3], r[4], r[8]) for r in b]
    assert [x for r in a for x in r[5:8]] == pytest.approx([x for r in b for x in r[5:8]], abs=1e-5)
    image_set = tiny_image_set(model)
    item = image_set.items[0]
    mine = sorted((r for r in small if r.image_id == item.id), key=lambda r: r.target)
    results = attack_targets(
        model,
        image_set.load(item),
        study.make_attack(),
        [r.target for r in mine],
        confidence=study.confidence,
        seed=study.seed,
        seed_keys=(item.id,),
    )
    assert [r.iterations for r in mine] == [a.iterations for a in results]
    assert [r.rms for r in mine] == pytest.approx([a.verdict.rms_distortion for a in results], abs=1e-6)


@pytest.mark.parametrize("attack", ["relabel", "pgd"])
def test_a_batch_refilled_across_units_gives_the_rows_of_unit_by_unit(model, tmp_path, one_thread, attack):
    """Issue 18 item 5: one batch of 3 slots, each slot taking the next pair as its pair ends (units finish out
    of order), against one batch per unit shrinking as its pairs stop: the same rows, and every unit committed."""
    params = {"eps": 8.0, "step_size": 2.0, "steps": 8} if attack == "pgd" else {}
    study = tiny_study(model, attack=attack, attack_params=params)
    seen, refilled = _sweep(model, tmp_path / "r.db", study, chunk=3)
    _, by_unit = _sweep(model, tmp_path / "u.db", study, chunk=3, refill=False)
    a, b = _key(refilled), _key(by_unit)
    assert [(r[0], r[2], r[3], r[4], r[8]) for r in a] == [(r[0], r[2], r[3], r[4], r[8]) for r in b]
    assert [x for r in a for x in r[5:8]] == pytest.approx([x for r in b for x in r[5:8]], abs=1e-5)
    assert len({r.iterations for r in refilled}) > 1 and seen[-1].done == seen[-1].total == len(a) == 45
    assert sum(len(p.rows) for p in seen if p.stage == "attack") == 45  # each unit's rows reported once


class _Boasting(torch.nn.Module):
    """A stand-in for a faster attacked path that is wrong: it adds 100 to every target logit, so judged by itself
    every pair would succeed at step 0."""

    def __init__(self, model: torch.nn.Module, targets: list[int]) -> None:
        super().__init__()
        self.model, self.targets = model, targets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)  # (N, K)
        bonus = torch.zeros_like(logits)
        bonus[torch.arange(len(x)), torch.tensor(self.targets[: len(x)])] = 100.0
        return logits + bonus


def test_a_faster_attacked_path_never_judges(model, one_thread):
    """run_unit(attacked=...) (bf16, compiled): the gradient flows through it, but every step and the final 8-bit
    image are judged by the plain model, so it cannot make a pair succeed early or falsely."""
    study, _, _, targets, unit = _one_image_unit(model)
    plain = run_unit(model, unit, study)
    same = run_unit(model, unit, study, attacked=torch.nn.Sequential(model))  # same numbers, judged separately
    assert [(r.success, r.iterations, r.final_class) for r in same] == [
        (r.success, r.iterations, r.final_class) for r in plain
    ]
    lying = run_unit(model, unit, study, attacked=_Boasting(model, targets))
    assert all(r.iterations > 0 for r in lying)  # nothing stopped on the boasting logits at step 0
    for row in lying:  # each verdict is the plain model's on the stored 8-bit distortion
        assert row.success == (row.final_class == row.target and row.rms <= study.max_rms)


def _screened(item):
    from images.imagesets import Screened

    return Screened(item.id, item.label, item.label)


def test_stop_and_resume_gives_the_uninterrupted_rows(model, tmp_path, one_thread):
    _, full = _sweep(model, tmp_path / "full.db")
    _, partial = _sweep(model, tmp_path / "part.db", stop_after=3)
    assert len(partial) == 6
    seen, resumed = _sweep(model, tmp_path / "part.db")
    plan = next(p for p in seen if p.stage == "plan")
    assert plan.done == 6  # nothing finished is recomputed
    assert not any(p.stage == "screen" for p in seen)  # the screening is kept too
    assert _key(resumed) == _key(full)


def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_rows(model, tmp_path, one_thread):
    db = tmp_path / "killed.db"
    rng = random.Random(int(time.time()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    counts = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(db), "--chunk", "2", "--pause", "0.02"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(rng.randint(3, 8)):  # screen, plan, then at least one committed unit
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0.0, 0.04))  # within a unit, its commit or the pause after it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        with sqlite3.connect(db) as conn:
            count, distinct = conn.execute(_COUNT).fetchone()
        conn.close()
        assert count == distinct
        counts.append((proc.returncode, count))
    assert any(code == -signal.SIGKILL and 0 < count < 45 for code, count in counts), counts
    seen, resumed = _sweep(model, db)
    assert next(p for p in seen if p.stage == "plan").done == count
    _, full = _sweep(model, tmp_path / "full.db")
    assert len(resumed) == 45 and _key(resumed) == _key(full)


def test_a_database_of_another_study_is_refused_with_one_line(model, tmp_path):
    db = tmp_path / "s.db"
    SweepStore.open(db, tiny_study(model).params()).close()
    SweepStore.open(db, tiny_study(model).params()).close()  # the same parameters: welcome back
    with pytest.raises(StoreError) as info:
        SweepStore.open(db, tiny_study(model, max_rms=0.02, targets="random:3").params())
    message = str(info.value)
    assert "\n" not in message and "use another --db or the same parameters" in message
    assert "differs in: attack_params, targets, max_rms" in message and "tiny0" in message


def test_a_database_of_another_program_is_refused_with_one_line(model, tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text that is long enough to have a header\n" * 20)
    for path in (other, text):
        for opener in (lambda p: SweepStore.open(p, tiny_study(model).params()), SweepStore.read):
            with pytest.raises(StoreError) as info:
                opener(path)
            assert "\n" not in str(info.value) and "not a sweep" in str(info.value)
    with pytest.raises(StoreError, match="no database file"):
        SweepStore.read(tmp_path / "missing.db")


def test_rows_are_never_duplicated(model, tmp_path):
    row = Row("img0", 1, 2, True, 3, 0.004, 0.01, 0.9, 2, 0.1)
    with SweepStore.open(tmp_path / "d.db", tiny_study(model).params()) as store:
        assert store.add_rows([row]) == 1
        assert store.add_rows([row, replace(row, target=3)]) == 1
        assert store.rows() == [row, replace(row, target=3)]


def test_targets_and_parameters_are_checked(model):
    categories = model.categories
    assert tiny_study(model).target_classes(categories) == tuple(range(10))
    fixed = tiny_study(model, targets="random:3").target_classes(categories)
    assert len(fixed) == 3 and fixed == tiny_study(model, targets="random:3").target_classes(categories)
    assert tiny_study(model, targets="class3, 7,class3").target_classes(categories) == (3, 7)
    for bad in ("random:0", "random:11", " , "):
        with pytest.raises(AttackError):
            tiny_study(model, targets=bad).target_classes(categories)
    with pytest.raises(AttackError, match="max_rms"):
        tiny_study(model, max_rms=0.0)
    with pytest.raises(AttackError, match="differs from the study's cap"):
        tiny_study(model, attack_params={"max_rms": 0.05})
    with pytest.raises(AttackError, match="steps"):
        tiny_study(model, attack_params={"steps": 0})
    params = tiny_study(model, confidence=0.5).params()
    assert params["attack_params"]["max_rms"] == 0.03 and params["criterion"] == "top1,p>=0.5"
    assert Study.from_params(params) == tiny_study(model, confidence=0.5, attack_params=params["attack_params"])


@pytest.mark.parametrize(
    "free_gib,available,expected", [(78, True, 512), (22, True, 128), (0.5, True, 8), (None, False, 256)]
)
def test_cuda_batches_follow_free_memory(monkeypatch, free_gib, available, expected):
    """512 pairs per batch was the fastest on an 80 GB H100 and 1024 ran out of memory: ~128 MiB per pair."""
    from attacks.runner import default_chunk

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int((free_gib or 0) * 2**30), 80 * 2**30))
    assert default_chunk(torch.device("cuda")) == expected
    assert default_chunk(torch.device("cpu")) == 8
