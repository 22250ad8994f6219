"""attacks.runner, the one driver of attack.run: stop indices, per-sample seeds, and result.json as valid JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
from PIL import Image
from tinynet import TinyClassifier

from attacks import Goal, make_attack
from attacks.base import Step
from attacks.runner import attack_targets, run_batch, run_to_end, sample_seed, save_result
from models import tensor_to_pil


def _steps(done_at: list[int], last: int) -> Iterator[Step]:
    """A fake Step stream of len(done_at) samples, sample j done from step done_at[j] on."""
    n = len(done_at)
    for i in range(last + 1):
        yield Step(
            index=i,
            x_adv=torch.zeros(n, 3, 2, 2),
            probs=torch.full((n, 10), 0.1),
            loss=torch.zeros(n),
            distortion=torch.zeros(n),
            done=torch.tensor([i >= d for d in done_at]),
            success=torch.zeros(n, dtype=torch.bool),
        )


def test_a_sample_done_at_step_zero_reports_zero_iterations() -> None:
    """Regression (issue 17 item 7): 0 was the 'not yet' sentinel, so a sample done at step 0 while others went on
    was recorded at the next step (1 iteration)."""
    end = run_to_end(_steps([0, 3, 1], last=3))
    assert end.stopped_at.tolist() == [0, 3, 1]
    assert end.last.index == 3


@pytest.fixture(scope="module")
def clf() -> TinyClassifier:
    return TinyClassifier()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    return torch.randint(0, 256, (6, 3, 16, 16), generator=g).float() / 255.0  # (6, 3, 16, 16)


def test_random_start_rows_do_not_depend_on_the_batch(clf, images) -> None:
    """Regression (issue 17 item 6): PGD's start noise was drawn for the whole batch, so a sample's result changed
    with its neighbours. Now each sample draws from its own seed: a run alone equals the same sample in a batch."""
    attack = make_attack("pgd", eps=8, step_size=2, steps=6, random_start=1)
    source = clf(images).argmax(1)  # (6,)
    target = (source + 1) % 10  # (6,)
    seeds = [sample_seed(3, j, int(target[j])) for j in range(len(images))]
    batch = run_batch(attack, clf, images, Goal(source, target), seeds=seeds)
    for j in (0, 4):
        alone = run_batch(attack, clf, images[j : j + 1], Goal(source[j : j + 1], target[j : j + 1]), seeds=[seeds[j]])
        assert torch.equal(alone.x_adv[0], batch.x_adv[j])
        assert int(alone.stopped_at[0]) == int(batch.stopped_at[j])
    assert sample_seed(3, 0, 1) == sample_seed(3, 0, 1) != sample_seed(3, 1, 0)


def test_attack_targets_rows_do_not_depend_on_the_chunk(clf, images) -> None:
    """The CLI's many-target run: the same target gives the same row in chunks of 2 and of 9."""
    original = tensor_to_pil(images[:1])
    attack = make_attack("pgd", eps=8, step_size=2, steps=6, random_start=1)
    source = int(clf(images[:1]).argmax())
    targets = [t for t in range(10) if t != source]
    a = attack_targets(clf, original, attack, targets, confidence=0.0, seed=3, chunk=2)
    b = attack_targets(clf, original, attack, targets, confidence=0.0, seed=3, chunk=9)
    assert [r.adversarial.tobytes() for r in a] == [r.adversarial.tobytes() for r in b]
    assert [r.iterations for r in a] == [r.iterations for r in b]


def test_result_json_of_an_unchanged_image_is_valid_json(clf, images, tmp_path) -> None:
    """Regression (issue 17 item 8): the PSNR of an unchanged image is infinite and result.json held `Infinity`."""
    original = tensor_to_pil(images[:1])
    attack = make_attack("fgsm", eps=0.01)  # far below one grey level: the saved image equals the original
    [result] = attack_targets(clf, original, attack, [None], confidence=0.0)
    assert result.adversarial.tobytes() == original.tobytes()
    data = save_result(result, clf, tmp_path)
    text = (tmp_path / "result.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"result.json holds {c}")) == data
    assert data["metrics"]["psnr"] is None
    assert isinstance(Image.open(tmp_path / "adversarial.png"), Image.Image)


@pytest.mark.parametrize("targeted", [True, False], ids=["targeted", "untargeted"])
def test_an_attack_lab_run_is_the_cli_run_with_the_same_seed(clf, images, targeted: bool) -> None:
    """Issue 17 item 4: the Attack Lab forced confidence 0 for untargeted runs (PGD "succeeded" at step 0 from its
    random start on a near tie) while the CLI asks p >= --confidence. Now the page's Step stream is the CLI's run:
    same rule, same per-sample seed, so the same final image, stop index and verdict."""
    from contextlib import nullcontext  # noqa: PLC0415

    from experiments.lab.steps import run_request, scheduled_steps  # noqa: PLC0415 - the page's engine
    from serving import Scheduler, Waiting  # noqa: PLC0415

    original = tensor_to_pil(images[2:3])
    attack = make_attack("pgd", eps=8, step_size=2, steps=8, random_start=1)
    source = int(clf(images[2:3]).argmax())
    target = (source + 3) % 10 if targeted else None
    (cli,) = attack_targets(clf, original, attack, [target], confidence=0.6, seed=5)
    scheduler = Scheduler(lambda name: nullcontext(clf))  # the page's runs go through the server's scheduler
    request = run_request("tiny", original, attack, source=source, target=target, confidence=0.6, seed=5)
    stream = scheduled_steps(scheduler, scheduler.submit(request))
    page = run_to_end(s for s in stream if not isinstance(s, Waiting))
    assert page.last.x_adv.shape == (1, 3, 16, 16)
    assert cli.adversarial.tobytes() == tensor_to_pil(page.x_adv).tobytes()
    assert int(page.stopped_at[0]) == cli.iterations
    assert bool(page.last.success[0]) == cli.success
    if not targeted:  # the rule is the confidence one: a success has its new top class at p >= 0.6
        top = clf.probabilities(page.x_adv)[0]  # (K,)
        assert bool(page.last.success[0]) == (int(top.argmax()) != source and float(top.max()) >= 0.6)
