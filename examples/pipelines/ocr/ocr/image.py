"""Decoding the pipeline's input: PNG or JPEG bytes -> a BGR uint8 array, refusing anything else.

Owns the input checks (format by signature, byte and pixel limits) so a bad item fails alone.
"""

import io

import cv2
import numpy as np
from PIL import Image

MAX_IMAGE_BYTES = 16 << 20
MAX_PIXELS = 25_000_000
MIN_SIDE = 8
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


class ImageError(ValueError):
    """Input bytes that are not a usable PNG/JPEG image."""


def image_format(data):
    """'PNG' or 'JPEG' by the file signature, else None."""
    head = bytes(data[:8])
    for magic, name in SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def decode_image(data):
    """PNG/JPEG bytes-like -> (h, w, 3) uint8 BGR array."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError("image of %d bytes is over %d" % (len(data), MAX_IMAGE_BYTES))
    if image_format(data) is None:
        raise ImageError("input is not a PNG or JPEG image")
    # Pillow reads only the header here: the size is checked before any pixel is decoded.
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError("unreadable image header: %s" % e) from None
    if w * h > MAX_PIXELS or min(w, h) < MIN_SIDE:
        raise ImageError("image size %dx%d out of range (sides >= %d, <= %d pixels)" % (w, h, MIN_SIDE, MAX_PIXELS))
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (h, w):
        raise ImageError("image could not be decoded (corrupt or truncated)")
    return image
