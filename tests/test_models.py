"""The model registry: every architecture builds without a download, real offline weights behave, offline
messages are clear, Grad-CAM is correct and thread-safe and leaves no hook behind."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam

from attacks import Goal, make_attack
from images import SAMPLES, load_image
from models import (
    MODELS,
    OFFLINE_MODELS,
    Classifier,
    UnknownClassError,
    UnknownModelError,
    WeightsUnavailable,
    class_index,
    get_spec,
    load_model,
    pil_to_tensor,
    resolve_targets,
)
from models.gradcam import grad_cam
from models.views import replace_submodule


def _hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


@pytest.mark.parametrize("name", list(MODELS))
def test_every_architecture_builds_attacks_and_explains_without_download(name: str) -> None:
    torch.manual_seed(0)
    model = load_model(name, pretrained=False, device="cpu")
    size = model.input_size
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    if name == "vit_b_16":  # torchvision zero-initialises the head; give it weights so gradients are non-zero
        torch.nn.init.normal_(model.net.heads.head.weight, std=0.02)
    x = torch.rand(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert model.features(x).shape[0] == 2 and model.features(x).dim() == 2
    source = logits.argmax(1)
    steps = list(
        make_attack("relabel", steps=1, step_size=1.0, max_rms=1.0).run(model, x, Goal(source, (source + 1) % 1000))
    )
    assert steps[-1].x_adv.shape == x.shape
    cam = grad_cam(model, x, [1, 2])
    assert cam.shape == (2, size, size) and float(cam.min()) >= 0 and float(cam.max()) <= 1  # random nets may give 0
    assert _hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())


def test_features_are_the_input_of_the_final_linear(lite0) -> None:
    x = torch.rand(1, 3, 224, 224)
    feats = lite0.features(x)  # (1, 1280)
    head = lite0.net.get_submodule(get_spec("efficientnet_lite0").head)
    assert torch.allclose(head(feats), lite0(x), atol=1e-4)


def test_offline_weights_behave(lite0) -> None:
    def top(sample: str) -> str:
        return lite0.categories[int(lite0.probabilities(lite0.to_tensor(load_image(sample))).argmax())]

    assert top("coffee") == "espresso"
    assert class_index(top("chelsea")) in range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    labelled = [s for s in SAMPLES.values() if s.label is not None]
    assert len(labelled) == 20
    x = torch.cat([lite0.to_tensor(load_image(s.id)) for s in labelled])
    correct = (lite0.probabilities(x).argmax(1) == torch.tensor([s.label for s in labelled])).sum().item()
    assert correct >= 15, f"only {correct}/20 Foolbox ImageNet samples right"


def test_channels_last_is_invisible_to_callers(lite0, chelsea_input) -> None:
    """The CPU model runs in channels-last memory for speed; logits, gradients and their layout must not change."""
    assert lite0.device.type == "cpu" and lite0._channels_last
    plain = Classifier(lite0.spec, copy.deepcopy(lite0.net).to(memory_format=torch.contiguous_format))
    x = pil_to_tensor(chelsea_input)  # (1, 3, 224, 224)
    grads = []
    for model in (lite0, plain):
        xr = x.clone().requires_grad_(True)
        logits = model(xr)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, torch.tensor([879])), xr)
        grads.append((logits.detach(), g))
    (l_cl, g_cl), (l_plain, g_plain) = grads
    assert torch.allclose(l_cl, l_plain, atol=1e-3)
    assert g_cl.is_contiguous() and F.cosine_similarity(g_cl.flatten(), g_plain.flatten(), dim=0) > 0.999


def test_preprocess_crops_photos_and_keeps_saved_model_inputs(lite0) -> None:
    photo = load_image("chelsea")  # 451 x 300
    seen = lite0.preprocess(photo)
    assert seen.size == (224, 224)
    assert lite0.preprocess(seen).tobytes() == seen.tobytes()  # a saved 224x224 input is not resized again


@pytest.mark.parametrize("name", OFFLINE_MODELS)
def test_offline_models_load_from_the_wheels(name: str) -> None:
    model = load_model(name, device="cpu")
    x = model.to_tensor(load_image("coffee"))
    assert x.shape[-1] == model.input_size
    assert model.categories[int(model(x).argmax())] == "espresso"


def test_online_model_offline_gives_a_clear_message(monkeypatch, tmp_path) -> None:
    import models.zoo as zoo

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(zoo, "_network_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(WeightsUnavailable) as info:
        zoo.load_model("resnet50", device="cpu")
    assert str(info.value) == "weights for resnet50 are not in the local cache and cannot be downloaded: no network"
    assert not zoo.weights_cached("resnet50")
    assert load_model("efficientnet_lite0", device="cpu") is not None  # the rest keeps working


def test_unknown_model() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'resnet5'"):
        load_model("resnet5")


def test_class_names_resolve() -> None:
    assert class_index("umbrella") == 879
    assert class_index("UMBRELLA") == 879
    assert class_index("879") == 879 and class_index(0) == 0
    with pytest.raises(UnknownClassError, match="did you mean"):
        class_index("umbrela stand")
    with pytest.raises(UnknownClassError, match="ambiguous"):
        class_index("cardigan")
    with pytest.raises(UnknownClassError, match="out of range"):
        class_index("1000")
    with pytest.raises(UnknownClassError, match="unknown class name"):
        class_index("not a class")


def test_target_specs_expand() -> None:
    assert resolve_targets("least-likely", source=5, least_likely=7) == [7]
    all_targets = resolve_targets("all", source=5, least_likely=7)
    assert len(all_targets) == 999 and 5 not in all_targets
    r1 = resolve_targets("random:4", source=5, least_likely=7, seed=3)
    assert r1 == resolve_targets("random:4", source=5, least_likely=7, seed=3) and len(set(r1)) == 4 and 5 not in r1
    with pytest.raises(UnknownClassError):
        resolve_targets("random:0", source=5, least_likely=7)


def test_views_share_weights_and_leave_the_original_alone(lite0) -> None:
    view = replace_submodule(lite0.net, "classifier", torch.nn.Identity())
    assert isinstance(lite0.net.classifier, torch.nn.Linear)
    assert view.conv_stem.weight is lite0.net.conv_stem.weight


def test_gradcam_matches_a_hand_computation(lite0, chelsea_input) -> None:
    """By hand, on an independent copy of the network (none of models.gradcam's view or tap): capture the layer's
    activation A with a plain hook, d(score)/dA, weights = spatial mean; captum's LayerGradCam on the copy agrees."""
    x = pil_to_tensor(chelsea_input)
    cls = 282
    twin = copy.deepcopy(lite0)  # its own modules and weights: hooking it cannot touch the shared model
    layer = twin.net.get_submodule(lite0.spec.gradcam_layer)
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    with torch.enable_grad():
        xr = x.clone().requires_grad_(True)
        score = twin(xr)[0, cls]
        (grad,) = torch.autograd.grad(score, store["a"])
    handle.remove()
    a = store["a"].detach()  # (1, 1280, 7, 7)
    small = F.relu((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))  # (1, 1, 7, 7)
    with torch.enable_grad():
        theirs = LayerGradCam(twin, layer).attribute(x.clone().requires_grad_(True), target=cls, relu_attributions=True)
    assert torch.allclose(theirs.detach(), small, rtol=1e-4, atol=1e-6 * float(small.max()))
    cam = F.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.max()
    ours = grad_cam(lite0, x, cls)
    assert torch.allclose(ours, cam, atol=1e-4)
    assert _hooks(lite0) == 0


def test_gradcam_is_safe_with_two_threads_on_one_model(lite0, chelsea_input) -> None:
    x_cat = pil_to_tensor(chelsea_input)
    x_coffee = lite0.to_tensor(load_image("coffee"))
    jobs = [(x_cat, 282), (x_coffee, 967), (x_cat, 879), (x_coffee, 504)]
    serial = [grad_cam(lite0, x, c) for x, c in jobs]
    results: dict[tuple[int, int], torch.Tensor] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for r in range(3):
                for k in range(len(jobs)):
                    j = (k + t) % len(jobs)  # the two threads interleave different jobs
                    x, c = jobs[j]
                    results[(t, r * 10 + j)] = grad_cam(lite0, x, c)
                    with torch.no_grad():
                        lite0(x)  # plain forwards from the same thread, as an attack would do
        except BaseException as err:  # collected and re-raised in the main thread below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for (t, key), cam in results.items():
        assert torch.allclose(cam, serial[key % 10], atol=1e-4), (t, key)
    assert _hooks(lite0) == 0
