"""Entry point of every OCR pipeline stage: ``python3 stage.py det|cls|rec``.

- ``det``: image bytes (PNG/JPEG) -> det payload (text-line crops);
- ``cls``: det payload -> the same crops, turned upright where they were upside down;
- ``rec``: cls payload -> JSON with the recognised lines.

Started by the worker as a long-running stage instance (``SLUICE_SOCKET``, ``SLUICE_STAGE``,
``SLUICE_MAX_BATCH``, maybe ``SLUICE_SHM_DIR``); ``sluice_stage.serve`` speaks the stage protocol.
The model is loaded before serving, so ``/ready`` means "model loaded". ``SLUICE_OCR_DEVICE`` and
``SLUICE_OCR_THREADS`` choose the provider and CPU threads (see ``ocr/runtime.py``).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "..", "sdk", "python")))
sys.path.insert(0, HERE)

from sluice_stage import serve  # noqa: E402

try:
    from ocr.stages import make_handler  # noqa: E402
except ModuleNotFoundError as missing:
    raise SystemExit(
        f"ocr stage: the Python module {missing.name!r} is not installed; install the examples' "
        "packages with scripts/install-python-deps.sh (from the repository root), or "
        "pip install -r examples/functions/textdir/requirements.txt"
    ) from missing

STAGES = ("det", "cls", "rec")

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STAGES:
        sys.exit("usage: stage.py det|cls|rec")
    serve(make_handler(sys.argv[1]))
