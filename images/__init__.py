"""Image input for the lab: decoding paths, uploads and built-in samples to 8-bit RGB, with one error type.

No Streamlit here, so the CLI and the tests use exactly the same loading code as the pages.
"""

from images.loading import MAX_PIXELS, ImageError, frame_count, load_image
from images.samples import SAMPLES, Sample, load_sample, sample_thumbnail

__all__ = [
    "ImageError",
    "MAX_PIXELS",
    "frame_count",
    "load_image",
    "SAMPLES",
    "Sample",
    "load_sample",
    "sample_thumbnail",
]
