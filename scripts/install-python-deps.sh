#!/usr/bin/env bash
# Installs the Python packages the example functions need (examples/functions/*/requirements.txt; the OCR
# pipeline example in examples/pipelines/ocr needs exactly the textdir set; today
# only textdir has one) into the interpreter named by $PYTHON (default python3). Idempotent: when every
# pinned version is already installed it does nothing (no registry access), so CI can run it each time.
# The SDK helper itself (sdk/python/sluice_function.py) needs only the standard library.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

for req in "$ROOT"/examples/functions/*/requirements.txt; do
    [ -f "$req" ] || continue
    if "$PYTHON" - "$req" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

missing = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name.strip())
    except PackageNotFoundError:
        have = None
    if not want or have != want.strip():
        missing.append(line)
sys.exit(1 if missing else 0)
PY
    then
        echo "install-python-deps: ${req#"$ROOT"/}: already installed"
    else
        echo "install-python-deps: installing ${req#"$ROOT"/}"
        PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --disable-pip-version-check -q -r "$req"
    fi
done
