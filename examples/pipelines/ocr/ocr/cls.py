"""The cls stage: text-line crops -> the same crops turned upright (0 or 180 degrees).

Owns the direction classifier (PaddleOCR's ``ch_ppocr_mobile_v2.0_cls``): each crop is resized to
48 rows and at most 192 columns keeping its aspect ratio, normalised ``(x / 255 - 0.5) / 0.5``,
zero-padded on the right to 3x48x192. A crop labelled ``180`` with probability above ``THRESH``
(0.9, PaddleOCR's ``cls_thresh``) is rotated by 180 degrees. Each line's ``angle`` then says the
rotation applied (0 or 180) and ``score`` the model's probability of that label.

Batching: every crop of every item in the stage batch goes into the same model call (the input shape
is fixed), in chunks of at most ``CHUNK`` crops to bound memory.
"""

import math

import cv2
import numpy as np

from . import payload, runtime

SHAPE = (3, 48, 192)
LABELS = (0, 180)
THRESH = 0.9
CHUNK = 64


def prepare(crop):
    """(h, w, 3) uint8 crop -> (3, 48, 192) float32."""
    _, height, width = SHAPE
    h, w = crop.shape[:2]
    resized_w = max(1, min(width, int(math.ceil(height * w / h))))
    resized = cv2.resize(crop, (resized_w, height), interpolation=cv2.INTER_LINEAR)
    out = np.zeros(SHAPE, dtype=np.float32)
    out[:, :, :resized_w] = (resized.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)
    return out


def upright(line, probs):
    """``line`` turned by 180 degrees when the model is sure enough it is upside down."""
    label = int(np.argmax(probs))
    angle = LABELS[label] if probs[label] > THRESH else 0
    crop = cv2.rotate(line.crop, cv2.ROTATE_180) if angle == 180 else line.crop
    return payload.Line(line.box, crop, angle, float(probs[LABELS.index(angle)]))


class Classifier:
    """The cls model's session and the cls step; thread-safe."""

    def __init__(self, n_threads=None, device=None):
        self.session = runtime.session(runtime.CLS_MODEL, n_threads, device)
        self.input_name = self.session.get_inputs()[0].name
        self.provider = self.session.get_providers()[0]

    def probabilities(self, crops):
        """Crops -> (N, 2) probabilities of 0 and 180 degrees."""
        out = [np.zeros((0, len(LABELS)), dtype=np.float32)]
        for start in range(0, len(crops), CHUNK):
            batch = np.stack([prepare(c) for c in crops[start : start + CHUNK]])
            out.append(self.session.run(None, {self.input_name: batch})[0])
        return np.concatenate(out)

    def classify(self, sets):
        """``CropSet``s -> new ``CropSet``s with every line upright, ``classified`` set."""
        probs = iter(self.probabilities([line.crop for s in sets for line in s.lines]))
        return [payload.CropSet(s.width, s.height, [upright(ln, next(probs)) for ln in s.lines], True) for s in sets]

    def classify_batch(self, blobs):
        """det payloads -> cls payload ``bytes`` or an ``Exception`` per item (bad payloads alone fail)."""
        return payload.map_payloads(blobs, self.classify, payload.encode)
