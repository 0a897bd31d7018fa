"""Tests of the textdir example: runs its handler directly (no socket) on the two sample images.

The upright line must come out "0" and the rotated one "180". Also checks bad input, and that the
preprocessing matches rapidocr's own TextClassifier (when OpenCV imports). Skipped cleanly when
onnxruntime, rapidocr-onnxruntime, numpy or Pillow is not installed
(``scripts/install-python-deps.sh`` installs them).
Run: ``python3 -m unittest examples/functions/textdir/test_textdir.py``.
"""

import base64
import importlib.util
import os
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
NEEDED = ("onnxruntime", "rapidocr_onnxruntime", "numpy", "PIL")
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]


def load_main():
    """Imports this folder's main.py under a name that cannot collide with other `main` modules."""
    spec = importlib.util.spec_from_file_location("textdir_main", os.path.join(HERE, "main.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_b64(name):
    with open(os.path.join(HERE, "samples", name), "rb") as f:
        return base64.b64encode(f.read()).decode()


@unittest.skipIf(MISSING, "not installed: %s" % ", ".join(MISSING))
class TextDirTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.main = load_main()

    def test_upright_is_0_and_rotated_is_180(self):
        for name, want in (("upright.png", "0"), ("rotated.png", "180")):
            t0 = time.perf_counter()
            out = self.main.handler({"image_b64": sample_b64(name)})
            ms = (time.perf_counter() - t0) * 1000
            self.assertEqual(out["direction"], want, out)
            self.assertGreater(out["score"], 0.9, out)
            self.assertIn(out["provider"], ("CPUExecutionProvider", "CUDAExecutionProvider"))
            print("\n  %s -> %s (%.1f ms, %s)" % (name, out, ms, out["provider"]), end="")

    def test_bad_input_raises(self):
        for event in (None, [], {}, {"image_b64": 3}, {"image_b64": "!!!"}, {"image_b64": "aGVsbG8="}):
            with self.assertRaises(Exception, msg=repr(event)):
                self.main.handler(event)

    def test_preprocessing_matches_rapidocr(self):
        try:
            import cv2  # noqa: F401 - rapidocr's classifier needs it
            from rapidocr_onnxruntime.ch_ppocr_cls.text_cls import TextClassifier
        except ImportError as e:  # e.g. OpenCV without libGL
            self.skipTest("rapidocr's TextClassifier does not import: %s" % e)
        import numpy as np
        from PIL import Image

        config = {
            "model_path": self.main.model_path(),
            "cls_image_shape": [3, 48, 192],
            "cls_batch_num": 6,
            "cls_thresh": 0.9,
            "label_list": ["0", "180"],
        }
        theirs = TextClassifier(config)
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((30, 100, 3), (100, 40, 3), (9, 700, 3))]
        images += [cv2.imread(os.path.join(HERE, "samples", n)) for n in ("upright.png", "rotated.png")]
        for bgr in images:
            ours = self.main.preprocess(Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])))
            # OpenCV resizes in fixed point: allow one grey level.
            self.assertLessEqual(np.abs(ours[0] - theirs.resize_norm_img(bgr)).max(), 1.01 / 127.5)
        for name in ("upright.png", "rotated.png"):
            label, score = theirs(cv2.imread(os.path.join(HERE, "samples", name)))[1][0]
            out = self.main.handler({"image_b64": sample_b64(name)})
            self.assertEqual(out["direction"], label)
            self.assertAlmostEqual(out["score"], float(score), places=3)


if __name__ == "__main__":
    unittest.main()
