"""Labelled objects on the map: a 2D detection box anchored to the map points seen inside it."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from tools.slam.map import Landmark, SlamMap


class TrackedView(Protocol):
    """What anchoring needs from the tracker: the map, K and the last frame's point matches."""

    map: SlamMap
    K: np.ndarray

    def frame_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...  # uv, point ids, T_cw


def _inside(uv: np.ndarray, box: Sequence[float], shrink: float) -> np.ndarray:
    x1, y1, x2, y2 = box
    dx, dy = shrink * (x2 - x1), shrink * (y2 - y1)
    return (uv[:, 0] >= x1 + dx) & (uv[:, 0] <= x2 - dx) & (uv[:, 1] >= y1 + dy) & (uv[:, 1] <= y2 - dy)


def anchor_detection(view: TrackedView, label: str, box: Sequence[float], timestamp: float,
                     min_points: int = 3, shrink: float = 0.1, merge_distance: float = 0.5) -> Landmark | None:
    """Anchor a detection box ``(x1, y1, x2, y2)`` of the current frame as a labelled landmark.

    The 3D position is the median of the matched map points inside the (slightly shrunk) box,
    keeping the nearer depth cluster so background points seen through the box weigh less.
    A landmark of the same label within ``merge_distance`` map units is updated instead.
    Returns None when the frame has no pose or too few map points fall inside the box.
    """
    uv, ids, T = view.frame_points()
    if T is None or len(ids) == 0:
        return None
    m = view.map
    with m.lock:
        sel = _inside(uv, box, shrink)
        P = np.array([m.points[i].position for i in ids[sel] if i in m.points]).reshape(-1, 3)
        if len(P) < min_points:
            return None
        depth = P @ T[2, :3] + T[2, 3]
        near = P[depth <= np.median(depth) * 1.25]  # drop points far behind the object
        pos = np.median(near if len(near) >= min_points else P, axis=0)
        key = label.strip().lower()
        old = m.landmarks.get(key)
        if old is not None and np.linalg.norm(old.position - pos) <= merge_distance:
            w = old.sightings / (old.sightings + 1)
            old.position = w * old.position + (1 - w) * pos
            old.n_points, old.last_seen, old.sightings = len(P), timestamp, old.sightings + 1
            return old
        lm = Landmark(key, pos, len(P), timestamp, timestamp)
        m.landmarks[key] = lm
        return lm
