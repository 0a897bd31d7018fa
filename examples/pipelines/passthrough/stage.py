"""Stages of the hand-off benchmark pipeline (``scripts/bench-handoff-live.sh``):

- ``gen``: the input is a decimal byte count n; the output is n bytes (a repeating pattern);
- ``sum``: reads every byte of its input and answers ``<length> <crc32>``.

Between them the worker hands the payload over in place (shared memory, when the spec allows it and
the stages are co-located) or copies it through itself (``handoff: [copy]``).
"""

import os
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "sdk", "python"))
from sluice_stage import serve  # noqa: E402

PATTERN = bytes(range(256)) * 4096  # 1 MiB


def generate(n):
    whole, rest = divmod(n, len(PATTERN))
    return PATTERN * whole + PATTERN[:rest]


def gen(items):
    out = []
    for inputs in items:
        try:
            n = int(bytes(inputs[0]).decode().strip())
        except ValueError:
            out.append(ValueError("the input must be a byte count"))
            continue
        out.append(generate(n))
    return out


def checksum(items):
    return [b"%d %d" % (len(inputs[0]), zlib.crc32(inputs[0])) for inputs in items]


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) == 2 else ""
    handlers = {"gen": gen, "sum": checksum}
    if stage not in handlers:
        sys.exit("usage: stage.py gen|sum")
    serve(handlers[stage])
