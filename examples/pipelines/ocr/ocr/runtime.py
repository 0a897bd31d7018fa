"""Where the OCR models live and how their onnxruntime sessions are made.

Owns: locating the three PaddleOCR ONNX models shipped in the PyPI package ``rapidocr-onnxruntime``
(found without importing the package, whose ``__init__`` pulls in its whole pipeline;
``SLUICE_OCR_MODEL_DIR`` overrides the folder), reading the recognition dictionary embedded in the
rec model's metadata, and building sessions with the provider and thread count the environment asks
for:

- ``SLUICE_OCR_DEVICE=cpu|cuda|auto`` (default ``auto``): ``auto`` takes ``CUDAExecutionProvider``
  when onnxruntime offers it (``onnxruntime-gpu`` with a GPU), else the CPU; ``cuda`` insists on it.
- ``SLUICE_OCR_THREADS`` (default 1): onnxruntime's intra-op threads. A stage's CPU quota, not the
  host's core count, is what it has, so profiling by thread count stands in for an SM share.
"""

import importlib.util
import os

import onnxruntime as ort

DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
DICT_KEY = "character"
DEVICES = ("cpu", "cuda", "auto")
MAX_THREADS = 256


class ConfigError(ValueError):
    """The environment asks for something this machine cannot give (bad value, missing model/GPU)."""


def model_dir():
    """The folder holding the ONNX models: $SLUICE_OCR_MODEL_DIR, else rapidocr-onnxruntime's."""
    override = os.environ.get("SLUICE_OCR_MODEL_DIR")
    if override:
        return override
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("rapidocr-onnxruntime is not installed and SLUICE_OCR_MODEL_DIR is not set")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


def model_path(name):
    path = os.path.join(model_dir(), name)
    if not os.path.isfile(path):
        raise ConfigError("model %s not found in %s" % (name, model_dir()))
    return path


def device():
    value = os.environ.get("SLUICE_OCR_DEVICE", "auto").strip().lower() or "auto"
    if value not in DEVICES:
        raise ConfigError("SLUICE_OCR_DEVICE must be one of %s, not %r" % ("|".join(DEVICES), value))
    return value


def threads():
    raw = os.environ.get("SLUICE_OCR_THREADS", "1").strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError("SLUICE_OCR_THREADS must be an integer, not %r" % raw) from None
    if not 1 <= n <= MAX_THREADS:
        raise ConfigError("SLUICE_OCR_THREADS must be in 1..%d, not %d" % (MAX_THREADS, n))
    return n


def providers(want=None):
    """onnxruntime providers for device ``want`` (default: $SLUICE_OCR_DEVICE), best first."""
    want = want or device()
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if want == "cuda" and not has_cuda:
        raise ConfigError("SLUICE_OCR_DEVICE=cuda but onnxruntime has no CUDAExecutionProvider")
    if want != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session(name, n_threads=None, device_name=None):
    """An inference session of model file ``name`` on the chosen provider and thread count."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = n_threads or threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_path(name), sess_options=opts, providers=providers(device_name))


def dictionary(sess):
    """The rec model's CTC alphabet: index 0 is the blank, then the embedded dictionary, then ' '."""
    meta = sess.get_modelmeta().custom_metadata_map
    if DICT_KEY not in meta:
        raise ConfigError("the rec model has no %r metadata (the character dictionary)" % DICT_KEY)
    chars = ["<blank>"] + meta[DICT_KEY].split("\n") + [" "]
    classes = sess.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != len(chars):
        raise ConfigError("dictionary has %d classes, the model outputs %d" % (len(chars), classes))
    return chars
