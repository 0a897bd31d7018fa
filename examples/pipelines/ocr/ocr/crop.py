"""Cutting a detected text line out of its image: perspective rectification and height normalisation.

Owns the crop that det hands on. The quad is warped to an upright rectangle (cubic interpolation,
replicated border); a crop at least 1.5 times taller than wide is taken for vertical text and turned
90 degrees counter-clockwise. The crop is then scaled to ``LINE_HEIGHT`` (48) pixels high keeping its
aspect ratio, the input height of both the cls and the rec model: the payload then carries no more
pixels than the models will read, and cls/rec resize only in width.
"""

import math

import cv2
import numpy as np

from .boxes import edge_lengths

LINE_HEIGHT = 48
MAX_LINE_WIDTH = 48 * 64
VERTICAL_RATIO = 1.5


def rectify(image, quad):
    """The pixels of ``image`` inside the ordered ``quad``, warped to an upright rectangle."""
    width, height = edge_lengths(quad)
    w, h = max(1, int(width)), max(1, int(height))
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if h >= VERTICAL_RATIO * w:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def normalize_height(crop, height=LINE_HEIGHT):
    """``crop`` scaled to ``height`` rows, width by the aspect ratio (1..MAX_LINE_WIDTH)."""
    h, w = crop.shape[:2]
    width = min(MAX_LINE_WIDTH, max(1, int(math.ceil(w * height / h))))
    if (h, w) == (height, width):
        return crop
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interp)


def line_crop(image, quad):
    """The normalised crop det emits for one detected line."""
    return normalize_height(rectify(image, quad))
