"""The adversarial patch engine (experiments.patch.patch): placing geometry, the controls judged at the very same
places, a stopped training run keeping its patch, bad input as one line, the shipped patches' sidecar figures
recomputed from their PNGs, the print sheet's physical size, and the simulated camera path on Lite0."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attacks import AttackError
from experiments.patch import patch as P
from images import ImageError
from models import UnknownClassError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "data/patch").glob("*.json"))


def test_apply_patch_puts_the_patch_where_it_is_asked() -> None:
    g = torch.Generator().manual_seed(0)
    image, patch = torch.rand(3, 64, 64, generator=g), torch.rand(3, 32, 32, generator=g)
    top_left = P.apply_patch(image, patch, 0.0, 0.0, 0.25, 0.0)  # side sqrt(0.25 * 64 * 64) = 32 px, pixel-aligned
    assert top_left.shape == image.shape
    assert torch.allclose(top_left[:, :32, :32], patch, atol=1e-4)
    assert torch.allclose(top_left[:, 32:, :], image[:, 32:, :], atol=1e-4)
    assert torch.allclose(top_left[:, :, 32:], image[:, :, 32:], atol=1e-4)
    bottom_right = P.apply_patch(image, patch, 1.0, 1.0, 0.25, 0.0)
    assert torch.allclose(bottom_right[:, 32:, 32:], patch, atol=1e-4)
    assert torch.allclose(bottom_right[:, :32, :], image[:, :32, :], atol=1e-4)
    turned = P.apply_patch(image, patch, 0.0, 0.0, 0.25, 90.0)  # counter-clockwise on screen, as PIL's rotate
    pil = np.asarray(Image.fromarray(P.to_uint8(patch)).rotate(90))
    assert np.abs(P.to_uint8(turned[:, :32, :32]).astype(int) - pil.astype(int)).max() <= 1
    assert not torch.allclose(turned[:, :32, :32], patch, atol=1e-2)
    # the covered area is the asked share of the image, at any angle inside the image
    white = P.apply_patch(torch.zeros(2, 3, 224, 224), torch.ones(3, 16, 16), 0.4, 0.6, 0.10, 30.0)
    assert white.shape == (2, 3, 224, 224)
    assert abs(float(white[0, 0].sum()) / 224**2 - 0.10) < 0.002


def test_bad_input_is_one_clear_error() -> None:
    for size in (0.005, 0.6, -0.1, float("nan")):
        with pytest.raises(AttackError, match="1-50% of the image area"):
            P.apply_patch(torch.zeros(3, 32, 32), torch.ones(3, 8, 8), 0.5, 0.5, size, 0.0)
    with pytest.raises(AttackError, match="x"):
        P.apply_patch(torch.zeros(3, 32, 32), torch.ones(3, 8, 8), 1.5, 0.5, 0.1, 0.0)
    with pytest.raises(UnknownClassError):
        P.resolve_target("not a class at all")
    with pytest.raises(ImageError, match="notes.png is not a usable image") as err:
        P.read_patch(b"just some text", "notes.png")
    assert "\n" not in str(err.value)
    buf = io.BytesIO()
    Image.new("RGB", (40, 20)).save(buf, format="PNG")
    with pytest.raises(AttackError, match="square patch"):
        P.read_patch(buf.getvalue(), "wide.png")


class _Recorder(torch.nn.Module):
    """A 10-class stand-in model that keeps every batch it is shown (only the patch's pixels differ)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.zeros(len(x), 10)


def test_patch_and_controls_are_judged_at_the_same_places(monkeypatch) -> None:
    calls: list[tuple[int, P.Placement]] = []
    real = P.place

    def spy(images, patch, where):
        calls.append((id(patch), where))
        return real(images, patch, where)

    monkeypatch.setattr(P, "place", spy)
    x = torch.rand(5, 3, 32, 32)
    table = P.heldout_table(_Recorder(), x, torch.rand(3, 8, 8), target=3, sizes=(0.05, 0.2), seed=7)
    assert len(calls) == 6  # three patches x two sizes, one batch each
    for size_calls in (calls[0::2], calls[1::2]):  # patch, noise, grey at one size
        first = size_calls[0][1]
        for _, where in size_calls[1:]:
            for a, b in zip(
                (first.x, first.y, first.fraction, first.angle),
                (where.x, where.y, where.fraction, where.angle),
                strict=True,
            ):
                assert torch.equal(a, b)
    assert not torch.equal(calls[0][1].fraction, calls[1][1].fraction)
    assert table["n"] == 5 and table["patch"] == [0.0, 0.0]  # the stand-in says class 0, never the target
    assert not torch.equal(P.placements(5, 0.1, 7).x, P.placements(5, 0.1, 8).x)
    # the controls are what they say: grey is flat mid-grey, noise spans the 8-bit range and is seeded
    assert torch.all(P.grey_patch((3, 8, 8)) == 128 / 255)
    noise = P.noise_patch((3, 8, 8), 1)
    assert torch.equal(noise, P.noise_patch((3, 8, 8), 1)) and float(noise.std()) > 0.2


def test_a_stopped_training_run_keeps_its_patch_so_far(tiny) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 16, 16, generator=g)
    work = P.train_patch(tiny, x, 3, steps=50, batch_size=4, resolution=8, holdout=4, seed=0, lr=0.1)
    first = next(work)
    for item in work:
        if item.step == 10:
            break
    work.close()  # what a Stop does to the generator
    assert item.step == 10 and not item.done and item.patch.shape == (3, 8, 8)
    assert not torch.equal(item.patch, first.patch)
    assert float(item.patch.min()) >= 0 and float(item.patch.max()) <= 1
    assert item.n_train == 8 and item.n_heldout == 4 and not set(item.train_ids) & set(item.heldout_ids)
    again = list(P.train_patch(tiny, x, 3, steps=10, batch_size=4, resolution=8, holdout=4, seed=0, lr=0.1))
    assert torch.equal(again[9].patch, item.patch)  # seeded: the same run gives the same patch
    assert again[-1].done and again[-1].heldout_success is not None
    losses = [p.loss for p in P.train_patch(tiny, x, 3, steps=60, batch_size=4, resolution=8, holdout=4, seed=0)]
    assert np.mean(losses[-11:-1]) < np.mean(losses[:10]) - 1.0  # it learns the target (EOT batches are noisy)


def test_print_sheet_has_the_asked_physical_size() -> None:
    patch = np.zeros((16, 16, 3), np.uint8)
    sheet = P.print_sheet(patch, 5.0, dpi=150)
    side, margin = round(5 / 2.54 * 150), round(1 / 2.54 * 150)
    assert sheet.width == side + 2 * margin
    assert np.asarray(sheet)[margin + side // 2, margin + side // 2].tolist() == [0, 0, 0]
    with Image.open(io.BytesIO(P.sheet_png(sheet, 150))) as im:
        assert round(im.info["dpi"][0]) == 150
    pdf = P.sheet_pdf(sheet, 150)
    box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", pdf)
    assert pdf.startswith(b"%PDF") and box is not None
    assert abs(float(box.group(1)) - sheet.width / 150 * 72) < 1  # points: the sheet prints at its size
    with pytest.raises(AttackError):
        P.print_sheet(patch, 0.1)


@pytest.mark.parametrize("sidecar", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_sidecar_figures_recompute_from_the_png(sidecar: Path, lite0) -> None:
    meta = json.loads(sidecar.read_text())
    split, table, here = meta["split"], meta["heldout"], meta["shipped_heldout"]
    assert split["n_train"] + split["n_heldout"] == 999 and len(meta["heldout_images"]) == split["n_heldout"]
    assert table["n"] <= split["n_heldout"] and table["sizes"] == list(P.SIZES)
    patch, _ = P.load_patch(sidecar.with_suffix(".png"))
    assert patch.shape == tuple(meta["shape"])
    _, x = P.load_inputs(lite0, str(ROOT / here["folder"]))
    assert len(x) == len(here["files"])
    again = P.heldout_table(lite0, x, patch, meta["target_index"], sizes=(0.10, 0.20), seed=table["seed"])
    for name in ("patch", "noise", "grey"):
        assert again[name] == here[name], name
    assert again["n"] == here["n"]


def test_camera_path_simulated_photo_is_the_target(lite0) -> None:
    """The shipped toaster patch printed at 5 cm, cut out, warped into held-out photos with perspective, a darker
    warmer light, noise and JPEG: the plain model answers toaster on most of them."""
    sidecar = ROOT / "data/patch/efficientnet_lite0_toaster.json"
    patch, meta = P.load_patch(sidecar)
    sheet = P.print_sheet(patch, 5.0, dpi=150)
    gap, margin, side = round(0.1 / 2.54 * 150), round(1 / 2.54 * 150), round(5 / 2.54 * 150)
    cut = sheet.crop((margin - gap, margin - gap, margin + side + gap, margin + side + gap))
    files = meta["shipped_heldout"]["files"][:4]
    photos = [Image.open(ROOT / "data/patch/heldout" / f).convert("RGB") for f in files]
    tops = [int(P.classify(lite0, P.simulate_photo(p, cut, area=0.2, seed=i)).argmax()) for i, p in enumerate(photos)]
    clean = [int(P.classify(lite0, p).argmax()) for p in photos]
    assert clean.count(859) == 0
    assert tops.count(859) >= 3, tops
