"""The det stage: images -> text-line crops (PP-OCRv4 detection model, DB post-processing).

Owns det's preprocessing, batching and the step from boxes to the payload:

1. letterbox: an image lower than ``MIN_HEIGHT`` or wider than ``MAX_ASPECT`` times its height (a
   single line, say) is padded above and below with its own border colour, so DB sees the context
   it was trained on;
2. resize so the longer side is at most ``LIMIT_SIDE`` (960, PaddleOCR's default for PP-OCRv4 with
   ``limit_type=max``), each side rounded to a multiple of 32 (the network's stride);
3. normalise ``(x / 255 - 0.5) / 0.5``, BGR, CHW.

Batching: the model takes NCHW, so images whose prepared tensors have the same shape run in one
``session.run``; different shapes run one call per shape. No padding to a common shape: padding
costs compute on every smaller image and shifts the map the DB thresholds see, and the samples of
one source (a scanner, a camera) share a shape anyway. After the run, each probability map goes
through ``boxes.boxes_from_map``; boxes are mapped back to source pixels, clipped, the ones under
4 pixels wide or high dropped, put in reading order and cut out with ``crop.line_crop``.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from . import payload, runtime
from .boxes import DbParams, boxes_from_map, edge_lengths, order_clockwise, reading_order
from .crop import line_crop
from .image import decode_image

LIMIT_SIDE = 960
STRIDE = 32
MIN_HEIGHT = 64
MAX_ASPECT = 8.0
MIN_BOX_SIDE = 3


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model, and how to map the model's pixels back to the source."""

    tensor: np.ndarray  # (3, H, W) float32
    pad_top: int
    scale_x: float  # model pixels per padded-source pixel
    scale_y: float


def border_colour(image):
    """Per-channel median of the image's outermost rows and columns: its background, usually."""
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return [int(v) for v in np.median(edge, axis=0)]


def letterbox(image):
    """(padded image, rows added on top)."""
    h, w = image.shape[:2]
    want = max(MIN_HEIGHT, int(np.ceil(w / MAX_ASPECT)))
    if h >= want:
        return image, 0
    top = (want - h) // 2
    padded = cv2.copyMakeBorder(image, top, want - h - top, 0, 0, cv2.BORDER_CONSTANT, value=border_colour(image))
    return padded, top


def prepare(image):
    """BGR uint8 image -> ``Prepared``."""
    padded, top = letterbox(image)
    h, w = padded.shape[:2]
    scale = min(1.0, LIMIT_SIDE / max(h, w))
    out_h = max(STRIDE, int(round(h * scale / STRIDE)) * STRIDE)
    out_w = max(STRIDE, int(round(w * scale / STRIDE)) * STRIDE)
    resized = cv2.resize(padded, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    tensor = (resized.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)
    return Prepared(np.ascontiguousarray(tensor), top, out_w / w, out_h / h)


def boxes_to_source(found, prepared, width, height):
    """Quads in model pixels -> ordered quads in source pixels, clipped, tiny ones dropped."""
    quads = []
    for quad, _score in found:
        src = np.empty_like(quad)
        src[:, 0] = np.clip(quad[:, 0] / prepared.scale_x, 0, width - 1)
        src[:, 1] = np.clip(quad[:, 1] / prepared.scale_y - prepared.pad_top, 0, height - 1)
        src = order_clockwise(src)
        w, h = edge_lengths(src)
        if w > MIN_BOX_SIDE and h > MIN_BOX_SIDE:
            quads.append(src)
    return [quads[i] for i in reading_order(quads)]


class Detector:
    """The det model's session and the whole det step; thread-safe (onnxruntime's run is)."""

    def __init__(self, n_threads=None, device=None, params=None):
        self.session = runtime.session(runtime.DET_MODEL, n_threads, device)
        self.input_name = self.session.get_inputs()[0].name
        self.provider = self.session.get_providers()[0]
        self.params = params or DbParams()

    def probability_maps(self, tensors):
        """Stacked (N, 3, H, W) inputs of one shape -> (N, H, W) text probability maps."""
        return self.session.run(None, {self.input_name: np.stack(tensors)})[0][:, 0]

    def crop_set(self, image, prepared, prob):
        """One image's probability map -> its ``CropSet`` (boxes in reading order, crops cut)."""
        h, w = image.shape[:2]
        quads = boxes_to_source(boxes_from_map(prob, self.params), prepared, w, h)
        return payload.CropSet(w, h, [payload.Line(q, line_crop(image, q)) for q in quads])

    def detect(self, images):
        """BGR images -> one ``CropSet`` or ``Exception`` each (a failed model run fails its shape group)."""
        results = [None] * len(images)
        prepared, groups = {}, {}
        for i, image in enumerate(images):
            try:
                prepared[i] = prepare(image)
            except (ValueError, cv2.error) as e:
                results[i] = e
                continue
            groups.setdefault(prepared[i].tensor.shape, []).append(i)
        for members in groups.values():
            try:
                maps = self.probability_maps([prepared[i].tensor for i in members])
            except Exception as e:  # onnxruntime raises its own types; the group fails, not the batch
                for i in members:
                    results[i] = RuntimeError("det model run failed: %s" % e)
                continue
            for i, prob in zip(members, maps, strict=True):
                try:
                    results[i] = self.crop_set(images[i], prepared[i], prob)
                except (ValueError, cv2.error) as e:
                    results[i] = e
        return results

    def detect_batch(self, blobs):
        """PNG/JPEG bytes-likes -> det payload ``bytes`` or an ``Exception`` per item."""
        results = [None] * len(blobs)
        images, where = [], []
        for i, blob in enumerate(blobs):
            try:
                images.append(decode_image(blob))
                where.append(i)
            except ValueError as e:
                results[i] = e
        for i, out in zip(where, self.detect(images), strict=True):
            if isinstance(out, Exception):
                results[i] = out
                continue
            try:
                results[i] = payload.encode(out)
            except payload.PayloadError as e:
                results[i] = e
        return results
