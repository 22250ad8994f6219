"""The Ray engine on a local cluster (2 CPUs, 200 MB object store) with the tiny network: exactly the local
engine's rows, and a sweep stopped midway resumes without recomputing or duplicating a pair."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sweep_worker import one_torch_thread, rows_key, tiny_image_set, tiny_study
from tinynet import TinyClassifier

from attacks import AttackError
from experiments.study.store import SweepStore
from experiments.study.sweep import run_sweep

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray (pip install -r requirements.txt)")

from experiments.study.ray_engine import OBJECT_STORE_MEMORY, run_sweep_ray  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_COUNT = "SELECT COUNT(*), COUNT(DISTINCT image_id || '/' || target) FROM rows"


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module (starting one takes seconds); workers import this checkout and tinynet."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    ray.init(
        num_cpus=2,
        object_store_memory=OBJECT_STORE_MEMORY,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
        log_to_driver=False,
    )
    yield ray.cluster_resources()
    ray.shutdown()


one_thread = pytest.fixture(one_torch_thread)
_key = rows_key


def _ray_sweep(db: Path, stop_after: int | None = None, **options):
    model = TinyClassifier()
    study = tiny_study(model)
    seen = []
    with SweepStore.open(db, study.params()) as store:
        sweep = run_sweep_ray(TinyClassifier, tiny_image_set(model), study, store, chunk=2, threads=1, **options)
        for progress in sweep:
            seen.append(progress)
            if stop_after is not None and sum(p.stage == "attack" for p in seen) >= stop_after:
                sweep.close()  # Stop: the actors are killed, the committed units stay
                break
        return seen, store.rows()


def test_ray_engine_gives_the_local_engines_rows_and_resumes_without_duplicates(cluster, tmp_path, one_thread):
    """Two Ray runs (starting actors is the slow part): two workers stopped after three units, then one worker
    resuming; every one of the 45 rows comes from a Ray worker and equals the local engine's."""
    assert cluster["CPU"] == 2 and cluster["object_store_memory"] == OBJECT_STORE_MEMORY
    model = TinyClassifier()
    study = tiny_study(model)
    with SweepStore.open(tmp_path / "local.db", study.params()) as store:
        local_seen = list(run_sweep(model, tiny_image_set(model), study, store, chunk=2))
        local = store.rows()

    db = tmp_path / "ray.db"
    seen, partial = _ray_sweep(db, stop_after=3, workers=2)
    plan = next(p for p in seen if p.stage == "plan")
    assert plan.message == next(p for p in local_seen if p.stage == "plan").message and plan.total == 45
    assert len(partial) == 6  # three units of two pairs committed; the units in flight are dropped
    assert _key(partial) == [k for k in _key(local) if (k[0], k[2]) in {(r.image_id, r.target) for r in partial}]

    seen, resumed = _ray_sweep(db, workers=1)
    assert next(p for p in seen if p.stage == "plan").done == 6  # nothing finished is recomputed
    assert not any(p.stage == "screen" for p in seen)
    assert sum(len(p.rows) for p in seen) == 39 and seen[-1].done == seen[-1].total == 45
    with sqlite3.connect(db) as conn:
        count, distinct = conn.execute(_COUNT).fetchone()
    conn.close()
    assert count == distinct == 45 and _key(resumed) == _key(local)
    assert 0 < sum(r.success for r in resumed) < 45  # both verdicts occur, so the comparison could fail


def test_more_workers_than_the_cluster_holds_is_refused_with_one_line(cluster, tmp_path):
    with pytest.raises(AttackError, match=r"^3 workers x 1 threads need 3 CPUs; the cluster has 2$"):
        _ray_sweep(tmp_path / "big.db", workers=3)
    with pytest.raises(AttackError, match="at least 1"):
        _ray_sweep(tmp_path / "zero.db", workers=0)
