"""The binary payload that carries text-line crops from det to cls and from cls to rec.

Owns the encoding (``encode``), the validating decoding (``decode``), per-item mapping over a
batch of payloads (``map_payloads``) and the two value types,
``CropSet`` (one image's detected lines) and ``Line`` (one line: box, rectified crop, orientation).
No pickle, no base64: a fixed little-endian header, then per line a fixed record and the crop's raw
uint8 pixels, then a CRC-32 of everything before it::

    header  "<4sBBHIII"  magic b"SOCR", version 1, flags (bit 0: lines classified), reserved 0,
                         image width, image height, line count
    line    "<8fHHfII"   box x0 y0 x1 y1 x2 y2 x3 y3 (float32, source-image pixels, clockwise from the
                         top-left), angle (0 or 180), reserved 0, cls score (float32),
                         crop height, crop width
            + height*width*3 bytes: the crop, BGR, row-major
    trailer "<I"         zlib.crc32 of all preceding bytes

``decode`` refuses a wrong magic/version/CRC, nonzero reserved fields, unknown flags, an angle other
than 0/180, out-of-range or non-finite values, a short buffer and trailing bytes. The crops it
returns are read-only numpy views into the buffer (no copy).
"""

import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"SOCR"
VERSION = 1
FLAG_CLASSIFIED = 1
HEADER = struct.Struct("<4sBBHIII")
LINE = struct.Struct("<8fHHfII")
TRAILER = struct.Struct("<I")
CHANNELS = 3
MAX_LINES = 4096
MAX_CROP_SIDE = 1 << 14
MAX_IMAGE_SIDE = 1 << 16
ANGLES = (0, 180)


class PayloadError(ValueError):
    """A payload that is not a valid crop set."""


@dataclass
class Line:
    """One detected text line: its quadrilateral in the source image and its rectified crop."""

    box: np.ndarray  # (4, 2) float32, clockwise from the top-left
    crop: np.ndarray  # (h, w, 3) uint8, BGR
    angle: int = 0
    score: float = 0.0


@dataclass
class CropSet:
    """One image's text lines in reading order, as det emits them and cls passes them on."""

    width: int
    height: int
    lines: list = field(default_factory=list)
    classified: bool = False


def encoded_size(crops):
    """Bytes ``encode`` will produce for a crop set with these crops."""
    return HEADER.size + sum(LINE.size + c.size for c in crops) + TRAILER.size


def encode(cropset):
    """A ``CropSet`` -> bytes (see the module doc)."""
    _check_dims(cropset.width, cropset.height, MAX_IMAGE_SIDE, "image")
    if len(cropset.lines) > MAX_LINES:
        raise PayloadError("%d lines, at most %d" % (len(cropset.lines), MAX_LINES))
    crops = [np.ascontiguousarray(line.crop, dtype=np.uint8) for line in cropset.lines]
    out = bytearray(encoded_size(crops))
    flags = FLAG_CLASSIFIED if cropset.classified else 0
    HEADER.pack_into(out, 0, MAGIC, VERSION, flags, 0, cropset.width, cropset.height, len(crops))
    pos = HEADER.size
    for line, crop in zip(cropset.lines, crops, strict=True):
        if crop.ndim != 3 or crop.shape[2] != CHANNELS:
            raise PayloadError("crop shape %s is not (h, w, 3)" % (crop.shape,))
        h, w = crop.shape[:2]
        _check_dims(w, h, MAX_CROP_SIDE, "crop")
        if line.angle not in ANGLES:
            raise PayloadError("angle %r is not 0 or 180" % (line.angle,))
        box = np.asarray(line.box, dtype=np.float32).reshape(-1)
        if box.size != 8 or not np.all(np.isfinite(box)):
            raise PayloadError("box must be 4 finite points")
        LINE.pack_into(out, pos, *box.tolist(), line.angle, 0, float(line.score), h, w)
        pos += LINE.size
        out[pos : pos + crop.size] = crop.reshape(-1).data
        pos += crop.size
    TRAILER.pack_into(out, pos, zlib.crc32(memoryview(out)[:pos]))
    return bytes(out)


def decode(buf):
    """Bytes-like -> ``CropSet``; raises ``PayloadError`` on anything malformed."""
    mv = memoryview(buf).cast("B")
    n = len(mv)
    if n < HEADER.size + TRAILER.size:
        raise PayloadError("payload of %d bytes is shorter than header + trailer" % n)
    (crc,) = TRAILER.unpack_from(mv, n - TRAILER.size)
    if zlib.crc32(mv[: n - TRAILER.size]) != crc:
        raise PayloadError("CRC-32 mismatch: payload corrupted")
    magic, version, flags, reserved, width, height, count = HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise PayloadError("bad magic %r" % magic)
    if version != VERSION:
        raise PayloadError("unsupported version %d" % version)
    if flags & ~FLAG_CLASSIFIED or reserved:
        raise PayloadError("unknown flags or nonzero reserved field")
    _check_dims(width, height, MAX_IMAGE_SIDE, "image")
    if count > MAX_LINES:
        raise PayloadError("%d lines, at most %d" % (count, MAX_LINES))
    end = n - TRAILER.size
    pos = HEADER.size
    lines = []
    for i in range(count):
        if pos + LINE.size > end:
            raise PayloadError("truncated at line %d" % i)
        fields = LINE.unpack_from(mv, pos)
        box, (angle, reserved, score, h, w) = fields[:8], fields[8:]
        if angle not in ANGLES or reserved:
            raise PayloadError("line %d: bad angle %d or reserved field" % (i, angle))
        if not all(math.isfinite(v) for v in box) or not math.isfinite(score):
            raise PayloadError("line %d: non-finite box or score" % i)
        _check_dims(w, h, MAX_CROP_SIDE, "line %d crop" % i)
        pos += LINE.size
        size = h * w * CHANNELS
        if pos + size > end:
            raise PayloadError("line %d: crop of %d bytes runs past the end" % (i, size))
        crop = np.frombuffer(mv, dtype=np.uint8, count=size, offset=pos).reshape(h, w, CHANNELS)
        pos += size
        lines.append(Line(np.array(box, dtype=np.float32).reshape(4, 2), crop, angle, score))
    if pos != end:
        raise PayloadError("%d trailing bytes after %d lines" % (end - pos, count))
    return CropSet(width, height, lines, bool(flags & FLAG_CLASSIFIED))


def map_payloads(blobs, step, finish):
    """Decodes each payload (a bad one fails alone), runs ``step`` on all good ``CropSet``s at once,
    then ``finish`` on each result: per item, the finished output or the ``Exception``."""
    results = [None] * len(blobs)
    sets, where = [], []
    for i, blob in enumerate(blobs):
        try:
            sets.append(decode(blob))
            where.append(i)
        except PayloadError as e:
            results[i] = e
    for i, out in zip(where, step(sets), strict=True):
        try:
            results[i] = finish(out)
        except ValueError as e:
            results[i] = e
    return results


def _check_dims(w, h, limit, what):
    if not (1 <= w <= limit and 1 <= h <= limit):
        raise PayloadError("%s size %dx%d out of range 1..%d" % (what, w, h, limit))
