"""Turn whatever a user hands us (a path, uploaded bytes, a sample id) into a plain 8-bit RGB PIL image.

Every model and attack downstream assumes mode "RGB", so all colour handling (EXIF rotation, grayscale, palettes,
alpha, CMYK, 16-bit) happens here once. Bad input never escapes as a PIL exception: it becomes one ImageError
whose message is a single line fit to show a user as is.
"""

from __future__ import annotations

import io
import os
import re
import struct
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: The largest image we agree to decode (width * height). 40 MP covers any phone photo; more would only cost memory.
MAX_PIXELS = 40_000_000
#: The largest encoded file we accept, so a bogus upload is refused before PIL reads it.
MAX_BYTES = 50 * 1024 * 1024

#: Exceptions PIL and its plugins raise on malformed files (the plugins are not consistent about which).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    ZeroDivisionError,
    TypeError,  # e.g. TIFF "Missing dimensions"
    NotImplementedError,  # e.g. DDS "Unimplemented pixel format"
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageError(ValueError):
    """Bad image input; str(err) is one line meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


def _one_line(text: str) -> str:
    """Collapse any whitespace (newlines included) so a message always fits on one line."""
    return " ".join(str(text).split())


def _megapixels(n: float) -> str:
    return f"{n / 1e6:.1f}" if n >= 1e5 else f"{n / 1e6:g}"


def _too_large(width: int, height: int, max_pixels: int) -> ImageError:
    return ImageError(
        f"the image is {width}x{height} = {_megapixels(width * height)} megapixels, "
        f"more than the limit of {_megapixels(max_pixels)} megapixels"
    )


def _describe(err: BaseException, max_pixels: int) -> str:
    """Map a PIL failure to one plain sentence; the details PIL gives are rarely useful to a user."""
    if isinstance(err, UnidentifiedImageError):
        return "the file is not an image (could not identify its format)"
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        # Pillow refuses these in Image.open itself, before we see the size; its message carries the pixel count.
        found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+) pixels", str(err))
        if found is None:
            return f"the image has too many pixels (more than the limit of {_megapixels(max_pixels)} megapixels)"
        pixels, pillow_limit = int(found.group(1)), int(found.group(2))
        whose = "the limit" if pixels > max_pixels else "Pillow's decompression-bomb limit"
        limit = max_pixels if pixels > max_pixels else pillow_limit
        return f"the image has {_megapixels(pixels)} megapixels, more than {whose} of {_megapixels(limit)} megapixels"
    text = str(err).lower()
    if isinstance(err, (EOFError, struct.error)) or any(
        word in text
        for word in (
            "truncated",
            "broken",
            "eof",
            "corrupt",
            "decoder",
            "not enough",
            "data stream",
            "codec",
            "overrun",
        )
    ):
        return "the image is truncated or corrupt"
    detail = _one_line(str(err)) or type(err).__name__
    return f"the image could not be decoded ({detail})"


def _alpha_on_white(im: Image.Image) -> Image.Image:
    """Flatten transparency onto white: models never saw alpha, and black behind it would invent dark edges."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map a high-depth array to 0..255 by its nominal range, so exposure is kept rather than stretched."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)
    data = arr.astype(np.float64)
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        scaled = data * 255.0  # floats in [0, 1] are the usual convention
    elif lo >= 0.0 and hi <= 255.0:
        scaled = data  # already 8-bit values in a wider container
    elif lo >= 0.0 and hi <= 65535.0:
        scaled = data / 257.0  # 16-bit values in a 32-bit container (e.g. mode "I")
    else:
        scaled = (data - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(data)
    return np.round(np.nan_to_num(np.clip(scaled, 0.0, 255.0))).astype(np.uint8)


def array_to_rgb(arr: np.ndarray) -> Image.Image:
    """Build an RGB image from an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of any numeric dtype."""
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape:
        raise ImageError(f"cannot make an RGB image from an array of shape {arr.shape}")
    arr = np.ascontiguousarray(_scale_to_uint8(arr))
    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L").convert("RGB")
    if arr.shape[2] == 4:
        return _alpha_on_white(Image.fromarray(arr, mode="RGBA"))
    return Image.fromarray(arr, mode="RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert a decoded image of any PIL mode to a new 8-bit RGB image, composing alpha on white."""
    mode = im.mode
    if mode == "RGB":
        return im.copy()
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        # PIL's own convert() clips 16-bit values to 255 (nearly white); scale by the nominal range instead.
        return array_to_rgb(np.asarray(im))
    if mode == "P":
        palette_alpha = im.palette is not None and im.palette.mode == "RGBA"
        return _alpha_on_white(im) if "transparency" in im.info or palette_alpha else im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _alpha_on_white(im)
    if mode in ("1", "L"):
        return im.convert("L").convert("RGB")
    if mode == "RGBX":
        return im.convert("RGB")
    if "transparency" in im.info:
        return _alpha_on_white(im)
    try:
        return im.convert("RGB")  # CMYK, YCbCr, HSV, ...
    except ValueError as err:
        raise ImageError(f"unsupported colour mode {mode!r} ({_one_line(str(err))})") from err


def _decode(fp: IO[bytes], max_pixels: int) -> Image.Image:
    """Open, refuse oversized images from the header alone, then decode the first frame fully and convert."""
    try:
        with Image.open(fp) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise _too_large(width, height, max_pixels)
            if width == 0 or height == 0:
                raise ImageError(f"the image has no pixels ({width}x{height})")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # multi-frame GIF/TIFF/WebP: the first frame is the picture
            im.load()  # decode everything now, so a truncated file fails here and not later in a model
            upright = ImageOps.exif_transpose(im)
            return to_rgb(upright)
    except ImageError:
        raise
    except MemoryError as err:
        raise ImageError("the image is too large to decode in the memory available") from err
    except _DECODE_ERRORS as err:
        raise ImageError(_describe(err, max_pixels)) from err


def frame_count(data: bytes) -> int:
    """Frames in an encoded image (an animated GIF or WebP, a multi-page TIFF). `load_image` keeps only the first,
    so a page can say so. 1 for a still image, and for a file PIL cannot read (load_image reports that one)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(getattr(im, "n_frames", 1))
    except _DECODE_ERRORS:
        return 1


def _check_size(n_bytes: int) -> None:
    if n_bytes == 0:
        raise ImageError("the file is empty")
    if n_bytes > MAX_BYTES:
        raise ImageError(f"the file is {n_bytes / 2**20:.1f} MB, more than the limit of {MAX_BYTES / 2**20:g} MB")


def load_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Load a path, uploaded bytes or a sample id (see images.samples.SAMPLES) as a new 8-bit RGB image.

    An existing path wins over a sample id of the same name. Raises ImageError (one line) for anything that is
    not a readable image of at most max_pixels pixels; the pixel limit is checked before pixels are decoded.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check_size(len(data))
        return _decode(io.BytesIO(data), max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_image expects a path, bytes or a sample id, not {type(source).__name__}")

    path = os.fspath(source)
    if not os.path.exists(path):
        if isinstance(source, str):
            from images.samples import SAMPLES, load_sample  # late import: samples.py imports this module

            if source in SAMPLES:
                image = load_sample(source)
                if image.width * image.height > max_pixels:
                    raise _too_large(image.width, image.height, max_pixels)
                return image
        raise ImageError(f"no such file or sample: {path!r}")
    if os.path.isdir(path):
        raise ImageError(f"{path!r} is a folder, not an image file")
    try:
        _check_size(os.path.getsize(path))
        with open(path, "rb") as fp:
            return _decode(fp, max_pixels)
    except ImageError:
        raise
    except OSError as err:  # permission denied, vanished file, I/O error: not a decoding problem
        reason = err.strerror or type(err).__name__
        raise ImageError(f"cannot read {path!r}: {_one_line(reason)}") from err
