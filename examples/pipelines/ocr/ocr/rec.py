"""The rec stage: upright text-line crops -> text and confidence (PP-OCRv4 recognition, CTC).

Owns recognition and the pipeline's final output. Each crop is resized to 48 rows keeping its aspect
ratio, normalised ``(x / 255 - 0.5) / 0.5`` and zero-padded on the right to the widest crop of its
chunk (at least 320 columns, the model's training width). The model emits per time step a softmax
over the CTC alphabet (blank, the 6623-character dictionary embedded in the model's metadata,
space); greedy decoding takes the best class per step, merges repeats, drops blanks, and scores a
line by the mean probability of the characters it kept. Lines with empty text or a score under
``MIN_SCORE`` (0.5, rapidocr's ``text_score``) are left out.

Batching: all lines of all items in the stage batch, sorted by aspect ratio so each chunk of at most
``CHUNK`` lines pads little, one model call per chunk.

Output per item: UTF-8 JSON ``{"lines": [{"text", "score", "box": [[x, y] x4], "angle"}],
"width", "height"}``, boxes in source-image pixels clockwise from the top-left, ``angle`` the
rotation cls applied.
"""

import json
import math

import cv2
import numpy as np

from . import payload, runtime

HEIGHT = 48
MIN_WIDTH = 320
CHUNK = 8
MIN_SCORE = 0.5


def prepare(crop, width):
    """(h, w, 3) uint8 crop -> (3, 48, width) float32."""
    h, w = crop.shape[:2]
    resized_w = max(1, min(width, int(math.ceil(HEIGHT * w / h))))
    resized = cv2.resize(crop, (resized_w, HEIGHT), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((3, HEIGHT, width), dtype=np.float32)
    out[:, :, :resized_w] = (resized.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)
    return out


def ctc_greedy(probs, alphabet):
    """(T, C) per-step class probabilities -> (text, mean probability of the kept steps)."""
    best = probs.argmax(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(alphabet[i] for i in best[keep])
    return text, float(probs.max(axis=1)[keep].mean())


class Recognizer:
    """The rec model's session, its alphabet and the rec step; thread-safe."""

    def __init__(self, n_threads=None, device=None):
        self.session = runtime.session(runtime.REC_MODEL, n_threads, device)
        self.input_name = self.session.get_inputs()[0].name
        self.provider = self.session.get_providers()[0]
        self.alphabet = runtime.dictionary(self.session)

    def read(self, crops):
        """Crops -> [(text, score)] in the same order."""
        ratios = [c.shape[1] / c.shape[0] for c in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        out = [None] * len(crops)
        for start in range(0, len(order), CHUNK):
            chunk = order[start : start + CHUNK]
            width = max(MIN_WIDTH, max(int(math.ceil(HEIGHT * ratios[i])) for i in chunk))
            batch = np.stack([prepare(crops[i], width) for i in chunk])
            probs = self.session.run(None, {self.input_name: batch})[0]
            for i, p in zip(chunk, probs, strict=True):
                out[i] = ctc_greedy(p, self.alphabet)
        return out

    def recognize(self, sets):
        """``CropSet``s -> one result dict each (see the module doc)."""
        reads = iter(self.read([line.crop for s in sets for line in s.lines]))
        results = []
        for s in sets:
            lines = []
            for line in s.lines:
                text, score = next(reads)
                if text.strip() and score >= MIN_SCORE:
                    box = [[round(float(x), 1), round(float(y), 1)] for x, y in line.box]
                    lines.append({"text": text, "score": round(score, 5), "box": box, "angle": line.angle})
            results.append({"lines": lines, "width": s.width, "height": s.height})
        return results

    def recognize_batch(self, blobs):
        """cls payloads -> UTF-8 JSON ``bytes`` or an ``Exception`` per item."""
        return payload.map_payloads(blobs, self.recognize, to_json)


def to_json(result):
    return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
