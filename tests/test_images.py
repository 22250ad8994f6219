"""Tests for images/: every odd input decodes to 8-bit RGB, every bad one fails with one ImageError line."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from images import MAX_PIXELS, SAMPLES, ImageError, Sample, frame_count, load_image, load_sample, sample_thumbnail
from images.loading import MAX_BYTES


def _encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but carries almost no data: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _error(source: object, **kwargs: object) -> str:
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert message and "\n" not in message
    return message


# --- good inputs --------------------------------------------------------------------------------------------------


def test_rgb_bytes_and_path_give_the_same_new_rgb_image(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(pixels), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for source in (data, bytearray(data), str(path), path):
        im = load_image(source)
        assert im.mode == "RGB" and im.size == (20, 12)
        assert np.array_equal(np.asarray(im), pixels)


def test_grayscale_modes() -> None:
    gray = Image.new("L", (4, 3), 77)
    assert load_image(_encode(gray, "PNG")).getpixel((0, 0)) == (77, 77, 77)
    la = Image.new("LA", (4, 3), (77, 255))
    assert load_image(_encode(la, "PNG")).getpixel((0, 0)) == (77, 77, 77)
    bw = Image.new("1", (4, 3), 1)
    assert load_image(_encode(bw, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white() -> None:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((1, 1), 1)
    out = load_image(_encode(im, "PNG", transparency=0))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent red -> white background
    assert out.getpixel((1, 1)) == (0, 0, 255)
    opaque = load_image(_encode(im, "PNG"))
    assert opaque.getpixel((0, 0)) == (255, 0, 0)


def test_rgba_is_composited_on_white() -> None:
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    im.putpixel((0, 0), (0, 0, 0, 255))
    im.putpixel((1, 0), (0, 0, 0, 128))
    out = load_image(_encode(im, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((1, 0)) == (127, 127, 127)
    assert out.getpixel((3, 3)) == (255, 255, 255)


def test_cmyk_jpeg() -> None:
    out = load_image(_encode(Image.new("CMYK", (16, 16), (0, 255, 0, 0)), "JPEG", quality=95))
    r, g, b = out.getpixel((8, 8))
    assert out.mode == "RGB" and r > 240 and g < 15 and b > 240  # magenta


def test_16bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[65535, 32896], [0, 257]], dtype=np.uint16)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    data = _encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = np.asarray(load_image(data))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [128, 128, 128]
    assert out[1, 0].tolist() == [0, 0, 0]
    assert out[1, 1].tolist() == [1, 1, 1]


def test_32bit_and_float_tiffs() -> None:
    as_int = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    assert np.asarray(load_image(_encode(as_int, "TIFF")))[0, :, 0].tolist() == [0, 255]
    as_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_image(_encode(as_float, "TIFF")))[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_applied() -> None:
    im = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_encode(im, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)
    assert out.mode == "RGB"


def test_gif_takes_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 6), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = load_image(data)
    assert out.mode == "RGB" and out.size == (8, 6)
    assert out.getpixel((3, 3)) == (255, 0, 0)
    assert frame_count(data) == 3  # what the pages' note says ("only the first frame is used")
    assert frame_count(_encode(frames[0], "GIF")) == 1
    assert frame_count(b"not an image") == 1  # load_image reports that one


def test_multipage_tiff_takes_the_first_page() -> None:
    pages = [Image.new("RGB", (5, 5), (10, 20, 30)), Image.new("L", (7, 7), 200)]
    out = load_image(_encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert out.size == (5, 5) and out.getpixel((0, 0)) == (10, 20, 30)


def test_returns_a_new_image_each_time() -> None:
    data = _encode(Image.new("RGB", (3, 3), (1, 2, 3)), "PNG")
    first = load_image(data)
    first.putpixel((0, 0), (9, 9, 9))
    assert load_image(data).getpixel((0, 0)) == (1, 2, 3)


# --- bad inputs ---------------------------------------------------------------------------------------------------


def test_empty_input(tmp_path: Path) -> None:
    assert _error(b"") == "the file is empty"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert _error(empty) == "the file is empty"


def test_not_an_image() -> None:
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert _error(noise) == "the file is not an image (could not identify its format)"
    assert _error(b"hello\nworld\n") == "the file is not an image (could not identify its format)"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_truncated_files(fmt: str, tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(pixels), fmt)
    half = data[: len(data) // 2]
    assert _error(half) == "the image is truncated or corrupt"
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(half)
    assert _error(path) == "the image is truncated or corrupt"


def test_pixel_limit_is_checked_before_decoding() -> None:
    small = _encode(Image.new("RGB", (20, 20)), "PNG")
    assert load_image(small, max_pixels=400).size == (20, 20)
    assert "20x20 = 0.0004 megapixels, more than the limit of 0.0001 megapixels" in _error(small, max_pixels=100)

    # Header-only PNGs: decoding these would fail, so a size message proves the check came first.
    assert MAX_PIXELS == 40_000_000
    assert _error(_png_header_only(7000, 7000)) == (
        "the image is 7000x7000 = 49.0 megapixels, more than the limit of 40.0 megapixels"
    )
    # 900 MP is past PIL's own decompression-bomb limit: still our one-line message, never PIL's error.
    message = _error(_png_header_only(30000, 30000))
    assert "900.0 megapixels" in message and "limit of 40.0 megapixels" in message


def test_real_large_dimension_png(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(path)  # 48 MP, yet a tiny file
    assert path.stat().st_size < 100_000
    assert _error(path) == "the image is 8000x6000 = 48.0 megapixels, more than the limit of 40.0 megapixels"


def test_too_many_bytes() -> None:
    assert "more than the limit of 50 MB" in _error(b"\0" * (MAX_BYTES + 1))


def test_missing_path_and_folder(tmp_path: Path) -> None:
    assert _error(str(tmp_path / "nope.png")).startswith("no such file or sample: ")
    assert _error(tmp_path / "nope.png").startswith("no such file or sample: ")
    assert _error("line one\nline two").startswith("no such file or sample: ")
    assert "folder" in _error(tmp_path)


def test_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_image(123)  # type: ignore[arg-type]


# --- samples ------------------------------------------------------------------------------------------------------


def test_expected_samples_exist() -> None:
    for sample_id in ("chelsea", "coffee", "china", "flower"):
        assert sample_id in SAMPLES
    imagenet = [s for s in SAMPLES.values() if s.id.startswith("imagenet_")]
    assert [s.id for s in imagenet] == [f"imagenet_{i:02d}" for i in range(20)]
    assert all(isinstance(s.label, int) and 0 <= s.label < 1000 for s in imagenet)
    assert SAMPLES["imagenet_00"].label == 243
    assert SAMPLES["imagenet_00"].title == "ImageNet val #00 (bull mastiff)"


def test_samples_are_frozen_and_keyed_by_id() -> None:
    for key, sample in SAMPLES.items():
        assert isinstance(sample, Sample) and sample.id == key and sample.title
    with pytest.raises(AttributeError):
        SAMPLES["chelsea"].title = "x"  # type: ignore[misc]


@pytest.mark.parametrize("sample_id", sorted(SAMPLES))
def test_every_sample_loads_as_rgb(sample_id: str) -> None:
    im = load_sample(sample_id)
    assert im.mode == "RGB"
    assert 64 <= min(im.size) and max(im.size) <= 4096
    assert np.asarray(im).std() > 5  # a real picture, not a blank
    thumb = sample_thumbnail(sample_id, 64)
    assert thumb.mode == "RGB" and max(thumb.size) == 64


def test_sample_ids_work_through_load_image() -> None:
    original = load_sample("chelsea").getpixel((0, 0))
    im = load_image("chelsea")
    assert im.mode == "RGB" and im.size == (451, 300)
    im.putpixel((0, 0), (1, 2, 3))  # callers may mutate; the cached decode must not see it
    assert load_sample("chelsea").getpixel((0, 0)) == original != (1, 2, 3)
    assert load_image(SAMPLES["china"].path or "").size == load_sample("china").size
    assert "megapixels" in _error("chelsea", max_pixels=1000)


def test_unknown_sample_lists_valid_ids() -> None:
    for call in (load_sample, sample_thumbnail):
        with pytest.raises(ImageError) as info:
            call("no_such_sample")
        message = str(info.value)
        assert "\n" not in message and "no_such_sample" in message and "chelsea" in message


@pytest.mark.skipif("camera" not in SAMPLES, reason="scikit-image is not installed")
def test_camera_is_grayscale_made_rgb() -> None:
    r, g, b = np.asarray(load_sample("camera")).transpose(2, 0, 1)
    assert np.array_equal(r, g) and np.array_equal(g, b)
