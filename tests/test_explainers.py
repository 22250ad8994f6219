"""Issue 11's explainers: seed 001's numbers from the code, the 2-D boundary attack, the committed digits networks,
fooling images, adversarial training, and the page rendering each section."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tinynet import TinyNet

from attacks import AttackError
from experiments.explainers import boundary as B
from experiments.explainers import digits as D
from experiments.explainers import linear as L

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------- 1. linear


def test_seed_logistic_example_from_the_code():
    r = L.logistic_nudge(0.5)
    assert f"{r.p_before:.4f}" == "0.0474"
    assert abs(r.p_after - 0.88) < 1e-3
    np.testing.assert_allclose(r.y, [1.5, -1.5, 3.5, -2.5, 2.5, 1.5, 1.5, -3.5, 4.5, 1.5])  # the seed's y
    np.testing.assert_allclose(r.contributions, 0.5)  # every w_i * dx_i pushes the same way
    assert r.score_after - r.score_before == pytest.approx(5.0)


def test_linear_change_grows_with_dimension_per_pixel_change_does_not():
    small, big = L.scale_argument(10, 1.0), L.scale_argument(L.MAX_DIMS, 1.0)
    assert small.eps == big.eps == pytest.approx(1 / 255)
    # E|w| = sqrt(2/pi) for N(0,1) weights: eps * n * 0.798 at image scale, about 470 for one 1/255 step
    assert big.aligned_change == pytest.approx(L.MAX_DIMS / 255 * np.sqrt(2 / np.pi), rel=0.02)
    assert big.random_change < big.aligned_change / 100  # random signs cancel: ~sqrt(n), not n
    with pytest.raises(AttackError):
        L.scale_argument(0, 1.0)


def test_first_order_prediction_matches_measured_on_a_tiny_net():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r = L.first_order_change(TinyNet(), x, 3)
    assert r.n_dims == 3 * 16 * 16
    assert r.predicted > 0 and r.measured == pytest.approx(r.predicted, rel=0.1)


@pytest.mark.slow
def test_first_order_change_on_lite0(lite0, chelsea_input):
    from models import pil_to_tensor

    x = pil_to_tensor(chelsea_input)  # (1, 3, 224, 224)
    top = int(lite0(x).argmax())
    tiny = L.first_order_change(lite0, x, top, step_255=0.05)
    assert tiny.measured == pytest.approx(tiny.predicted, rel=0.15)  # linear for tiny steps
    one = L.first_order_change(lite0, x, top, step_255=1.0)
    assert one.measured > 1.0 and one.predicted > one.measured  # a 1/255 step moves the logit by whole units


# ------------------------------------------------------------------------------------------- 2. boundary


@pytest.mark.parametrize("norm", B.NORMS)
def test_boundary_path_crosses_and_straight_step_is_measured(norm):
    net = B.trained_moons_net(0)
    assert B.accuracy(net) > 0.95
    a = B.attack_path(net, (0.25, 1.0), norm=norm, eps=1.0, steps=40)  # the page's default start
    assert B.predict(net, a.start)[0] != a.target
    assert a.crossed_at is not None and a.crossed_at > 1
    assert B.predict(net, a.end.point)[0] == a.target  # the same network, asked again
    order = np.inf if norm == "linf" else 2
    assert all(np.linalg.norm(np.subtract(p.point, a.start), order) <= a.eps + 1e-5 for p in a.path)
    # the straight step: same length, first gradient; its class is the network's answer at that point
    assert a.straight_length == pytest.approx(a.step_size * (len(a.path) - 1))
    dist = np.linalg.norm(np.subtract(a.straight.point, a.start), order)
    assert dist == pytest.approx(a.straight_length, rel=1e-4)
    assert B.predict(net, a.straight.point)[0] == a.straight.label
    assert not a.straight_crossed  # at this start the first gradient misses the bending boundary


def test_moons_training_is_deterministic():
    a, b = B.trained_moons_net.__wrapped__(0, 100), B.trained_moons_net.__wrapped__(0, 100)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# ------------------------------------------------------------------------------------------- 3. digits


def test_committed_digits_weights_reach_their_recorded_accuracy():
    info = D.committed_metrics()
    split = D.digits_split()
    for kind in ("standard", "robust"):
        acc = D.accuracy(D.load_network(kind), split.x_test, split.y_test)
        assert acc == pytest.approx(info[kind]["test_accuracy"], abs=1e-4)
        assert D.held_out_accuracy(D.load_network(kind)) == acc
    assert info["standard"]["test_accuracy"] > 0.97


def test_robust_net_beats_standard_net_under_pgd():
    """Recomputed, and equal to the curves the page shows from metrics.json."""
    info = D.committed_metrics()
    std, rob = D.load_network("standard"), D.load_network("robust")
    for eps in (0.1, 0.2, 0.3):
        a_std, a_rob = D.robust_accuracy(std, eps), D.robust_accuracy(rob, eps)
        assert a_rob > a_std + 0.05, eps
        assert a_std == pytest.approx(info["standard"]["pgd_accuracy"][f"{eps:g}"], abs=1e-4)
        assert a_rob == pytest.approx(info["robust"]["pgd_accuracy"][f"{eps:g}"], abs=1e-4)


def test_fooling_noise_reaches_9999_and_survives_retraining():
    std = D.load_network("standard")
    last = D.exhaust(D.grow_fooling(std, [7, 3], seed=0))
    with torch.no_grad():
        p = std(last.images).softmax(-1)  # the saved 8-bit images, asked again
    assert bool((p[:, [7, 3]].diagonal() >= 0.9999).all())
    rejects = D.reject_training_set(std, per_digit=5, seed=100)  # other noise than the fresh start below
    re, _ = D.train_to_end(epochs=10, seed=1, extra=rejects, n_classes=11)
    with torch.no_grad():
        assert float((re(rejects[0]).argmax(1) == 10).float().mean()) > 0.9  # the old fooling images are rejected
    fresh = D.exhaust(D.grow_fooling(re, [7], seed=1))
    with torch.no_grad():
        assert float(re(fresh.images).softmax(-1)[0, 7]) >= 0.99  # yet new noise fools it again


def test_generators_are_deterministic_under_a_seed():
    def run(seed: int) -> tuple[list[float], torch.Tensor]:
        steps = list(D.train(epochs=1, eps=0.2, pgd_steps=2, seed=seed))
        return [s.loss for s in steps], torch.cat([p.flatten() for p in steps[-1].net.parameters()])

    (l1, w1), (l2, w2), (l3, _) = run(3), run(3), run(4)
    assert l1 == l2 and torch.equal(w1, w2) and l1 != l3
    std = D.load_network("standard")
    a, b = D.exhaust(D.grow_fooling(std, [1], seed=5)), D.exhaust(D.grow_fooling(std, [1], seed=5))
    assert torch.equal(a.images, b.images)


def test_bad_settings_are_one_clear_error():
    with pytest.raises(AttackError, match="eps"):
        next(D.train(eps=2.0))
    with pytest.raises(AttackError, match="norm"):
        B.attack_path(B.trained_moons_net(0), (0.0, 0.0), norm="l1")


# ------------------------------------------------------------------------------------------- the page


def test_page_renders_every_section():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/how_it_works.py", default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.tabs) == 3
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["p(class 1) before"] == "0.0474" and metrics["p(class 1) after"] == "0.88"
    assert any("Iterated: class" in s.value for s in at.success)
    assert any("straight step" in i.value for i in at.info)
    at.toggle(key="how.grow.retrained").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("rejects" in c.value for c in at.caption)


def test_page_live_parts_run():
    """Grow a fooling image, then train for one epoch, each through ui.run's Run button: the image reaches
    99.99%, the new network's curve joins the chart, and both jobs end usable."""
    import json

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/how_it_works.py", default_timeout=120).run()
    assert any("Press **Run**" in i.value for i in at.info)
    at.button(key="how.grow.run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    grow = at.session_state["how.grow.job"]
    assert grow.status == "finished" and grow.data["frame"].reached and grow.data["digit"] == 7
    assert grow.data["frame"].probs[7] >= 0.9999
    assert any("reached" in m.value for m in at.markdown if m.value.startswith("**Step"))
    at.slider(key="how.train.epochs").set_value(1)
    at.slider(key="how.train.eps").set_value(0.0).run()
    at.button(key="how.train.run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    train = at.session_state["how.train.job"]
    assert train.status == "finished" and not at.button(key="how.train.run").disabled
    assert at.button(key="how.train.stop").disabled
    names = [d.get("name") for c in at.get("plotly_chart") for d in json.loads(c.proto.spec)["data"]]
    assert "trained just now" in names
    curve = train.data["curve"]
    assert curve[0][0] == 0.0 and curve[0][1] > 0.5  # one epoch of plain training: far above chance (10%)
