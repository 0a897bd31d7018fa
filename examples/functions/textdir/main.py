"""The "textdir" example Sluice function: real model inference, text-line direction (0 or 180 degrees).

Input ``{"image_b64": "<base64 PNG/JPEG of one text line>"}`` ->
``{"direction": "0" | "180", "score": <float>, "provider": "<onnxruntime execution provider>"}``.

The model is PaddleOCR's text-direction classifier (``ch_ppocr_mobile_v2.0_cls_infer.onnx``) as shipped
inside the PyPI package ``rapidocr-onnxruntime``; it runs with onnxruntime on
``CUDAExecutionProvider`` when that provider is available (``onnxruntime-gpu``), else on CPU.
``TEXTDIR_MODEL`` overrides the model path, ``TEXTDIR_THREADS`` the CPU threads per inference
(default 1: the sandbox's CPU quota, not the host's core count, is what we have).

Preprocessing follows rapidocr's ``TextClassifier.resize_norm_img``: BGR channel order, resize to
height 48 keeping the aspect ratio (width at most 192), scale (x / 255 - 0.5) / 0.5, zero-pad on the
right to 3x48x192; labels ``['0', '180']``. The model is loaded before the socket is served, so
``/ready`` means "model loaded".
"""

import base64
import binascii
import importlib.util
import io
import math
import os
import threading

try:
    import numpy as np
    import onnxruntime as ort
    from PIL import Image
except ModuleNotFoundError as missing:
    raise SystemExit(
        f"textdir: the Python module {missing.name!r} is not installed; install the examples' "
        "packages with scripts/install-python-deps.sh (from the repository root), or "
        "pip install -r examples/functions/textdir/requirements.txt"
    ) from missing

SHAPE = (3, 48, 192)  # cls_image_shape
LABELS = ("0", "180")
MAX_IMAGE_BYTES = 8 << 20
MAX_PIXELS = 16_000_000
MODEL_FILE = "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def model_path():
    """The classifier's ONNX file: $TEXTDIR_MODEL, else the one inside rapidocr-onnxruntime."""
    if os.environ.get("TEXTDIR_MODEL"):
        return os.environ["TEXTDIR_MODEL"]
    # find_spec locates the package without importing it (its __init__ pulls in OpenCV).
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapidocr-onnxruntime is not installed and TEXTDIR_MODEL is not set")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError("no %s in the installed rapidocr-onnxruntime" % MODEL_FILE)
    return path


def _linear_taps(n_out, n_in):
    """Source indices and weights of OpenCV's INTER_LINEAR along one axis (half-pixel centres)."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_linear(a, out_w, out_h):
    """cv2.resize(a, (out_w, out_h)) for an HxWxC uint8 array, in numpy: bilinear, no antialiasing."""
    a = a.astype(np.float32)
    r0, r1, fy = _linear_taps(out_h, a.shape[0])
    c0, c1, fx = _linear_taps(out_w, a.shape[1])
    rows = a[r0] * (1 - fy)[:, None, None] + a[r1] * fy[:, None, None]
    out = rows[:, c0] * (1 - fx)[None, :, None] + rows[:, c1] * fx[None, :, None]
    return np.clip(np.rint(out), 0, 255)


def preprocess(image):
    """PIL image -> float32 array (1, 3, 48, 192), as rapidocr's TextClassifier.resize_norm_img."""
    c, h, w = SHAPE
    bgr = np.asarray(image.convert("RGB"))[:, :, ::-1]  # rapidocr reads images with cv2: BGR
    ratio = bgr.shape[1] / float(bgr.shape[0])
    resized_w = max(1, min(w, int(math.ceil(h * ratio))))
    x = resize_linear(bgr, resized_w, h)
    x = (x.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    out = np.zeros((1, c, h, w), dtype=np.float32)
    out[0, :, :, : x.shape[2]] = x
    return out


class Classifier:
    """One onnxruntime session; ``classify`` is thread-safe (onnxruntime's run is)."""

    def __init__(self, path=None, threads=None):
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads or int(os.environ.get("TEXTDIR_THREADS", "1"))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path or model_path(), sess_options=opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.provider = self.session.get_providers()[0]

    def classify(self, image):
        """(direction, score) of a PIL image of one text line."""
        probs = self.session.run(None, {self.input_name: preprocess(image)})[0][0]
        i = int(np.argmax(probs))
        return LABELS[i], float(probs[i])


_classifier = None
_lock = threading.Lock()


def classifier():
    """The process's classifier, loaded on first use."""
    global _classifier
    with _lock:
        if _classifier is None:
            _classifier = Classifier()
        return _classifier


def decode_image(b64):
    """A base64 PNG/JPEG string -> PIL image, refusing oversized input."""
    if not isinstance(b64, str) or not b64:
        raise ValueError('input must be {"image_b64": "<base64 PNG or JPEG>"}')
    if len(b64) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ValueError("image over %d bytes" % MAX_IMAGE_BYTES)
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("image_b64 is not valid base64: %s" % e) from None
    image = Image.open(io.BytesIO(data))
    if image.format not in ("PNG", "JPEG"):
        raise ValueError("image must be PNG or JPEG, not %s" % image.format)
    if image.width * image.height > MAX_PIXELS or min(image.size) < 1:
        raise ValueError("image size %dx%d out of range" % image.size)
    image.load()
    return image


def handler(event):
    if not isinstance(event, dict):
        raise ValueError('input must be {"image_b64": "<base64 PNG or JPEG>"}')
    image = decode_image(event.get("image_b64"))
    clf = classifier()
    direction, score = clf.classify(image)
    return {"direction": direction, "score": round(score, 6), "provider": clf.provider}


if __name__ == "__main__":
    from sluice_function import serve

    classifier()  # load the model before answering /ready
    serve(handler)
