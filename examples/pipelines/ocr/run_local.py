"""Runs the OCR pipeline det -> cls -> rec in one process (no Sluice) and prints each result as JSON.

``python3 run_local.py samples/*.png`` -> one JSON line per image:
``{"file": ..., "lines": [{"text", "score", "box", "angle"}], "width", "height", "batch_ms"}``
(``batch_ms``: the whole batch through the three stages), or
``{"file": ..., "error": ...}``. All images go through each stage as one batch. Exit status 1 when
any image failed. ``SLUICE_OCR_THREADS`` / ``SLUICE_OCR_DEVICE`` as for the stages.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ocr.stages import STAGES, make_handler, run_chain  # noqa: E402


def main(paths):
    if not paths:
        print("usage: run_local.py IMAGE...", file=sys.stderr)
        return 2
    blobs = []
    for path in paths:
        with open(path, "rb") as f:
            blobs.append(f.read())
    handlers = {stage: make_handler(stage) for stage in STAGES}
    t0 = time.perf_counter()
    results = run_chain(handlers, blobs)
    ms = round((time.perf_counter() - t0) * 1000, 1)
    failed = False
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, Exception):
            failed = True
            out = {"file": path, "error": "%s: %s" % (type(result).__name__, result)}
        else:
            out = {"file": path, **json.loads(result), "batch_ms": ms}
        print(json.dumps(out, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
