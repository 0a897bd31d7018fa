"""The three stage handlers, in the shape the stage helper's ``serve(handler)`` calls them.

Owns the step from a stage batch to the batched model functions: ``handler(items)`` takes one list
of input buffers per batch item (one buffer per predecessor; every OCR stage has exactly one) and
returns one ``bytes`` output or ``Exception`` per item. An item with the wrong number of inputs, an
undecodable image or a corrupt payload fails alone; the others in the batch go on. Nothing here
depends on the helper (``sluice_stage``), so the handlers run in tests and in ``run_local.py``.
``make_handler`` loads the model and runs one blank item through it before returning; ``run_chain``
runs the three handlers one after the other in one process (no Sluice).
"""

import sys

import cv2
import numpy as np

from . import payload
from .cls import Classifier
from .det import Detector
from .rec import Recognizer

STAGES = ("det", "cls", "rec")


def single_inputs(items, batch_fn):
    """Runs ``batch_fn`` on the sole input of each item; items without exactly one input fail alone."""
    results = [None] * len(items)
    inputs, where = [], []
    for i, item in enumerate(items):
        if len(item) != 1:
            results[i] = ValueError("an OCR stage takes exactly 1 input per item, got %d" % len(item))
        else:
            inputs.append(item[0])
            where.append(i)
    for i, out in zip(where, batch_fn(inputs), strict=True):
        results[i] = out
    return results


def make_handler(stage, n_threads=None, device=None):
    """Loads ``stage``'s model (``det``, ``cls`` or ``rec``), says on stderr which onnxruntime provider
    runs it, and returns its batch handler."""
    if stage == "det":
        model = Detector(n_threads, device)
        batch_fn = model.detect_batch
    elif stage == "cls":
        model = Classifier(n_threads, device)
        batch_fn = model.classify_batch
    elif stage == "rec":
        model = Recognizer(n_threads, device)
        batch_fn = model.recognize_batch
    else:
        raise ValueError("unknown OCR stage %r (one of %s)" % (stage, ", ".join(STAGES)))
    print("ocr %s: model on %s" % (stage, model.provider), file=sys.stderr, flush=True)

    def handler(items):
        return single_inputs(items, batch_fn)

    warm_up(stage, handler)
    return handler


def warm_up(stage, handler):
    """One item through ``handler`` on a blank input, so the first real batch pays no first-run costs."""
    if stage == "det":
        blob = cv2.imencode(".png", np.full((64, 256, 3), 255, np.uint8))[1].tobytes()
    else:
        line = payload.Line(
            np.array([[0, 0], [191, 0], [191, 47], [0, 47]], np.float32), np.full((48, 192, 3), 255, np.uint8)
        )
        blob = payload.encode(payload.CropSet(192, 48, [line], stage == "rec"))
    (out,) = handler([[memoryview(blob)]])
    if isinstance(out, Exception):
        raise RuntimeError("%s stage failed its warm-up: %s" % (stage, out))


def run_chain(handlers, blobs):
    """det -> cls -> rec in this process: image bytes -> rec's JSON ``bytes`` or the first ``Exception``."""
    results = list(blobs)
    for stage in STAGES:
        live = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
        outs = handlers[stage]([[memoryview(results[i])] for i in live])
        for i, out in zip(live, outs, strict=True):
            results[i] = out
    return results
