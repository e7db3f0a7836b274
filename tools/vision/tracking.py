"""Multi-object tracking driven by a detector, and following one object.

``MultiObjectTracker`` is SORT/ByteTrack-style: one ``cv2.KalmanFilter``
(constant velocity on centre and size) per track, Hungarian assignment on IoU
(same label only), first with confident boxes and then with weak ones, which
may only continue tracks. ``ObjectPipeline`` runs the detector every N frames
and lets the filters predict in between. ``ObjectFollower`` /
``track_object`` pick one object by label and report when it is lost.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from tools.base import ToolResult
from tools.vision.detector import Box, Detection, ObjectDetector, match_label

if TYPE_CHECKING:
    from tools.common.settings import DetectorSettings

_F = np.eye(8, dtype=np.float32) + np.eye(8, k=4, dtype=np.float32)  # x += v each frame
_H = np.eye(4, 8, dtype=np.float32)
_POS_STD, _VEL_STD = 1 / 20, 1 / 160  # noise as a fraction of box height (as in DeepSORT)


def _diag(stds: list[float]) -> np.ndarray:
    """Covariance matrix of independent noise with these standard deviations."""
    return np.diag(np.square(stds)).astype(np.float32)


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N,4] with every box in b [M,4] (x1, y1, x2, y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


@dataclass(frozen=True)
class TrackedObject:
    """A tracked object in one frame."""

    track_id: int
    label: str
    score: float
    box: Box

    def as_json(self) -> dict[str, Any]:
        return {**Detection(self.label, self.score, self.box).as_json(), "track_id": self.track_id}


class Track:
    """One object's Kalman filter and bookkeeping."""

    def __init__(self, track_id: int, det: Detection) -> None:
        self.id, self.label, self.score = track_id, det.label, det.score
        self.hits, self.missed = 1, 0
        self.kf = cv2.KalmanFilter(8, 4)
        self.kf.transitionMatrix, self.kf.measurementMatrix = _F.copy(), _H.copy()
        z = self._z(det.box)
        h = max(float(z[3, 0]), 1.0)
        self.kf.statePost = np.concatenate([z, np.zeros((4, 1), np.float32)])
        self.kf.errorCovPost = _diag([2 * _POS_STD * h] * 4 + [10 * _VEL_STD * h] * 4)

    @staticmethod
    def _z(box: Box) -> np.ndarray:
        x1, y1, x2, y2 = box
        return np.array([[(x1 + x2) / 2], [(y1 + y2) / 2], [x2 - x1], [y2 - y1]], np.float32)

    @property
    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.kf.statePost[:4, 0])
        w, h = max(w, 1.0), max(h, 1.0)
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def predict(self) -> None:
        h = max(float(self.kf.statePost[3, 0]), 1.0)
        self.kf.processNoiseCov = _diag([_POS_STD * h] * 4 + [_VEL_STD * h] * 4)
        self.kf.predict()
        self.kf.statePost = self.kf.statePre.copy()  # coast until the next measurement
        self.kf.errorCovPost = self.kf.errorCovPre.copy()

    def update(self, det: Detection) -> None:
        h = max(float(self.kf.statePost[3, 0]), 1.0)
        self.kf.measurementNoiseCov = _diag([_POS_STD * h] * 4)
        self.kf.correct(self._z(det.box))
        self.score, self.hits, self.missed = det.score, self.hits + 1, 0

    def snapshot(self) -> TrackedObject:
        return TrackedObject(self.id, self.label, self.score, self.box)


@dataclass
class TrackFrame:
    """Tracker output for one frame: visible objects and ids started or lost here."""

    objects: list[TrackedObject]
    new: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    detected: bool = False  # whether the detector ran on this frame


class MultiObjectTracker:
    """Stable ids across frames; a track is lost after ``max_missed`` detector runs without a match."""

    def __init__(self, score_threshold: float = 0.35, match_iou: float = 0.25, max_missed: int = 3) -> None:
        self.score_threshold, self.match_iou, self.max_missed = score_threshold, match_iou, max_missed
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def _associate(self, tracks: list[Track], dets: list[Detection]
                   ) -> tuple[list[tuple[Track, Detection]], list[Track], list[Detection]]:
        """Hungarian matching on IoU (same label); returns pairs, unmatched tracks, unmatched boxes."""
        iou = iou_matrix(np.array([t.box for t in tracks]).reshape(-1, 4),
                         np.array([d.box for d in dets]).reshape(-1, 4))
        same = np.array([[t.label == d.label for d in dets] for t in tracks], bool).reshape(iou.shape)
        iou = np.where(same, iou, 0.0)
        rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
        pairs = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= self.match_iou]
        used_t, used_d = {r for r, _ in pairs}, {c for _, c in pairs}
        return ([(tracks[r], dets[c]) for r, c in pairs], [t for i, t in enumerate(tracks) if i not in used_t],
                [d for i, d in enumerate(dets) if i not in used_d])

    def step(self, detections: list[Detection] | None) -> TrackFrame:
        """Advance one frame; ``None`` means the detector did not run on it (predict only)."""
        for t in self.tracks:
            t.predict()
        if detections is None:
            return TrackFrame([t.snapshot() for t in self.tracks if t.missed == 0])
        high = [d for d in detections if d.score >= self.score_threshold]
        low = [d for d in detections if d.score < self.score_threshold]
        pairs, rest, fresh = self._associate(self.tracks, high)
        pairs2, unmatched, _ = self._associate(rest, low)
        for t, d in pairs + pairs2:
            t.update(d)
        for t in unmatched:
            t.missed += 1
        lost = [t.id for t in unmatched if t.missed >= self.max_missed]
        self.tracks = [t for t in self.tracks if t.missed < self.max_missed]
        born = [Track(next(self._ids), d) for d in fresh]
        self.tracks += born
        return TrackFrame([t.snapshot() for t in self.tracks if t.missed == 0], [t.id for t in born], lost, True)


class ObjectPipeline:
    """Detect every ``every`` frames (weak boxes included for the tracker), track in between."""

    def __init__(self, detector: ObjectDetector, tracker: MultiObjectTracker, every: int = 3,
                 low_score: float | None = None) -> None:
        self.detector, self.tracker, self.every, self.low_score = detector, tracker, max(1, every), low_score
        self.frame_index = 0

    @classmethod
    def from_settings(cls, detector: ObjectDetector, cfg: "DetectorSettings") -> "ObjectPipeline":
        tracker = MultiObjectTracker(cfg.score_threshold, cfg.match_iou, cfg.max_missed)
        return cls(detector, tracker, cfg.detect_every, min(cfg.low_score, cfg.score_threshold))

    def step(self, frame: np.ndarray) -> TrackFrame:
        run = self.frame_index % self.every == 0
        self.frame_index += 1
        return self.tracker.step(self.detector.detect(frame, self.low_score) if run else None)


@dataclass
class FollowState:
    """Where the followed object is: status ``searching``, ``tracking`` or ``lost``."""

    status: str
    label: str
    track_id: int | None = None
    box: Box | None = None


class ObjectFollower:
    """Follows the best-matching object of one label with a single track id."""

    def __init__(self, pipeline: ObjectPipeline, label: str) -> None:
        self.pipeline, self.label = pipeline, label
        self.state = FollowState("searching", label)

    def step(self, frame: np.ndarray) -> FollowState:
        out = self.pipeline.step(frame)
        if self.state.status == "lost":
            return self.state
        if self.state.track_id is None:
            cands = [o for o in out.objects if o.label == self.label]
            if cands:  # most confident, then largest
                best = max(cands, key=lambda o: (round(o.score, 2), _area(o.box)))
                self.state = FollowState("tracking", self.label, best.track_id, best.box)
            return self.state
        mine = next((o for o in out.objects if o.track_id == self.state.track_id), None)
        if self.state.track_id in out.lost:
            self.state = FollowState("lost", self.label, self.state.track_id, None)
        elif mine is not None:
            self.state = FollowState("tracking", self.label, mine.track_id, mine.box)
        return self.state

    def end(self) -> FollowState:
        """No more frames: a followed object is lost with them."""
        if self.state.status == "tracking":
            self.state = FollowState("lost", self.label, self.state.track_id, None)
        return self.state


def track_object(label: str, frames: Iterable[np.ndarray], pipeline: ObjectPipeline) -> ToolResult:
    """Find ``label`` in the frames, follow it with one track id and report when it is lost."""
    target = match_label(label, pipeline.detector.labels)
    if target is None:
        return ToolResult(ok=False, summary=f"I can't recognise a {label}, so I can't track it.",
                          data={"label": label, "status": "unknown-label"})
    follower = ObjectFollower(pipeline, target)
    states = [follower.step(f) for f in frames]
    first = next((i for i, s in enumerate(states) if s.status == "tracking"), None)
    final = follower.end()
    ids = {s.track_id for s in states if s.track_id is not None}
    tracked = sum(s.status == "tracking" for s in states)
    lost_at = next((i for i, s in enumerate(states) if s.status == "lost"), len(states))
    data = {"label": label, "matched_label": target, "status": final.status, "track_id": final.track_id,
            "first_frame": first, "frames_tracked": tracked,
            "lost_at_frame": lost_at if first is not None else None,
            "frames": len(states), "track_ids": sorted(ids),
            "path": [[round(v, 1) for v in s.box] for s in states if s.box is not None]}
    if first is None:
        return ToolResult(ok=False, summary=f"I don't see a {target}.", data=data)
    end = "the frames ran out" if lost_at >= len(states) else f"it was lost at frame {lost_at}"
    return ToolResult(ok=True, summary=f"I followed the {target} for {tracked} frames; {end}.", data=data)
