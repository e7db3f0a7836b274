"""Liveness over a window of frames: a blink or a head/face motion means a live person.

MediaPipe face mesh (legacy ``mp.solutions.face_mesh``) gives 468 landmarks per
frame. Blink: the eye aspect ratio (EAR) dips well below its median. Motion: the
landmark shape changes beyond what a similarity transform explains (Procrustes
residual), so sliding or scaling a printed photo does not count, a turning or
talking head does. A still photo repeated gives neither.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

# Eye contours in the 468-point mesh: corner, top, top, corner, bottom, bottom.
LEFT_EYE = (33, 160, 158, 133, 153, 144)
RIGHT_EYE = (362, 385, 387, 263, 373, 380)
MIN_FRAMES = 3


@dataclass(frozen=True)
class LivenessResult:
    live: bool
    blink: bool
    motion: float  # largest Procrustes residual vs the median face shape
    ear_drop: float  # 1 - min EAR / median EAR
    frames: int  # frames in which a face was found
    reason: str

    def as_json(self) -> dict:
        d = asdict(self)
        d["motion"], d["ear_drop"] = round(self.motion, 4), round(self.ear_drop, 3)
        return d


class LandmarkDetector(Protocol):
    """Face landmarks of one BGR frame as an (N, 2) array in pixels, or None."""

    def landmarks(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        ...


class MediaPipeFaceMesh:
    """MediaPipe face mesh, each frame on its own (no tracking jitter on identical frames); one face."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def landmarks(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        h, w = frame_bgr.shape[:2]
        res = self._mesh.process(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
        if not res.multi_face_landmarks:
            return None
        pts = res.multi_face_landmarks[0].landmark
        return np.array([(p.x * w, p.y * h) for p in pts], dtype=np.float64)

    def close(self) -> None:
        self._mesh.close()


def eye_aspect_ratio(pts: np.ndarray) -> float:
    """Mean EAR of both eyes: eyelid gap over eye width (drops sharply in a blink)."""
    ears: list[float] = []
    for p1, p2, p3, p4, p5, p6 in (LEFT_EYE, RIGHT_EYE):
        width = np.linalg.norm(pts[p1] - pts[p4])
        gap = np.linalg.norm(pts[p2] - pts[p6]) + np.linalg.norm(pts[p3] - pts[p5])
        ears.append(float(gap / (2.0 * width)) if width > 0 else 0.0)
    return float(np.mean(ears))


def shape_motion(shapes: list[np.ndarray]) -> float:
    """Largest Procrustes residual of any frame's landmarks vs the median shape."""
    from scipy.spatial import procrustes

    ref = np.median(np.stack(shapes), axis=0)
    return max(float(np.sqrt(procrustes(ref, s)[2])) for s in shapes)


def check_liveness(frames_bgr: list[np.ndarray], detector: LandmarkDetector,
                   blink_ear_drop: float, motion_threshold: float) -> LivenessResult:
    """Live if a blink or a non-rigid head/face motion shows in the frames."""
    shapes = [s for s in (detector.landmarks(f) for f in frames_bgr) if s is not None]
    if len(shapes) < MIN_FRAMES:
        return LivenessResult(False, False, 0.0, 0.0, len(shapes),
                              f"face seen in {len(shapes)} frames, need {MIN_FRAMES}")
    ears = np.array([eye_aspect_ratio(s) for s in shapes])
    med = float(np.median(ears))
    ear_drop = 1.0 - float(ears.min()) / med if med > 0 else 0.0
    blink = ear_drop >= blink_ear_drop
    motion = shape_motion(shapes)
    moved = motion >= motion_threshold
    if blink or moved:
        reason = " and ".join(w for w, ok in (("blink", blink), ("head motion", moved)) if ok) + " seen"
    else:
        reason = "no blink or head motion (still image?)"
    return LivenessResult(blink or moved, blink, motion, ear_drop, len(shapes), reason)
