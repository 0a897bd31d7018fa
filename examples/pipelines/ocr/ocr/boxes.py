"""DB (Differentiable Binarization) post-processing: a text-probability map -> text-line boxes.

Owns the geometry between the det model's output and the crops: threshold the map, dilate, find the
contours, fit each a minimum-area rectangle, score it by the mean probability inside, grow it back
by the shrink ratio DB trained with ("unclip", a polygon offset done with pyclipper), fit again, then
order each box's corners clockwise from the top-left and the boxes in reading order. Parameters are
PaddleOCR's PP-OCR defaults (``thresh`` 0.3, ``box_thresh`` 0.5 as in rapidocr, ``unclip_ratio``
1.6, 2x2 dilation).
"""

from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper


@dataclass(frozen=True)
class DbParams:
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    min_size: float = 3.0


def order_clockwise(points):
    """4 points -> (4, 2) float32 ordered top-left, top-right, bottom-right, bottom-left.

    The two leftmost points are the left edge (upper one first), the two rightmost the right edge:
    right for text lines, which are wider than they are tilted.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def min_area_quad(points):
    """The minimum-area rectangle around ``points`` as an ordered quad, and its shorter side."""
    rect = cv2.minAreaRect(np.asarray(points, dtype=np.float32).reshape(-1, 1, 2))
    return order_clockwise(cv2.boxPoints(rect)), min(rect[1])


def mean_inside(prob, quad):
    """Mean of ``prob`` over the pixels inside ``quad`` (the "fast" DB box score)."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    local = np.round(quad - np.array([x0, y0], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [local], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def unclip(quad, ratio):
    """Grows ``quad`` outwards by area * ratio / perimeter (DB's inverse of its label shrinking)."""
    perimeter = cv2.arcLength(quad.reshape(-1, 1, 2), True)
    if perimeter <= 0:
        return None
    distance = cv2.contourArea(quad.reshape(-1, 1, 2)) * ratio / perimeter
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(np.round(quad).astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(distance)
    if not paths:
        return None
    return np.array(max(paths, key=len), dtype=np.float32)


def boxes_from_map(prob, params=DbParams()):
    """(H, W) probability map -> list of (quad in map pixels, score)."""
    bitmap = cv2.dilate((prob > params.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for contour in contours[: params.max_candidates]:
        quad, side = min_area_quad(contour)
        if side < params.min_size:
            continue
        score = mean_inside(prob, quad)
        if score < params.box_thresh:
            continue
        grown = unclip(quad, params.unclip_ratio)
        if grown is None:
            continue
        quad, side = min_area_quad(grown)
        if side < params.min_size + 2:
            continue
        found.append((quad, score))
    return found


def edge_lengths(quad):
    """(width, height) of an ordered quad: its longer top/bottom edge and longer left/right edge."""
    width = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))
    height = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return float(width), float(height)


def reading_order(quads):
    """Indices of ``quads`` top-to-bottom, then left-to-right within a row.

    A box joins the current row when its vertical centre lies within half the row's first box's
    height of that box's centre; rows are then sorted by their left edges.
    """
    if not quads:
        return []
    centre_y = [float(q[:, 1].mean()) for q in quads]
    order = sorted(range(len(quads)), key=lambda i: (centre_y[i], float(quads[i][:, 0].min())))
    rows, row = [], [order[0]]
    for i in order[1:]:
        first = row[0]
        if abs(centre_y[i] - centre_y[first]) <= edge_lengths(quads[first])[1] / 2:
            row.append(i)
        else:
            rows.append(row)
            row = [i]
    rows.append(row)
    return [i for r in rows for i in sorted(r, key=lambda j: float(quads[j][:, 0].min()))]
