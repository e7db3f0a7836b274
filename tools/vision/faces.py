"""Finding faces: MediaPipe face detection (short + full range), then face mesh per face crop.

Running the mesh on crops (not the whole frame) finds small and many faces
that the mesh's own short-range detector misses; a face whose crop yields no
mesh keeps its detector box and ``landmarks=None``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
MIN_CROP = 192  # the mesh model's input size: smaller crops are upscaled


@dataclass
class FoundFace:
    box: Box
    score: float
    landmarks: np.ndarray | None  # (478, 3): x, y in frame pixels, z in the same scale


def iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0, min(ax1, bx1) - max(a[0], b[0])), max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter or 1)


def landmark_box(points: np.ndarray, width: int, height: int) -> Box:
    x0, y0 = np.clip(points[:, :2].min(axis=0), 0, [width - 1, height - 1])
    x1, y1 = np.clip(points[:, :2].max(axis=0), 0, [width - 1, height - 1])
    return int(x0), int(y0), max(int(x1 - x0), 1), max(int(y1 - y0), 1)


class FaceFinder:
    """Face boxes from two BlazeFace models, merged by IoU; 478-point mesh for each."""

    def __init__(self, max_faces: int, min_confidence: float, margin: float = 0.35) -> None:
        import mediapipe as mp

        fd = mp.solutions.face_detection.FaceDetection
        self.detectors = [fd(model_selection=0, min_detection_confidence=min_confidence),
                          fd(model_selection=1, min_detection_confidence=min_confidence)]
        self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                    refine_landmarks=True, min_detection_confidence=0.3)
        self.max_faces = max_faces
        self.margin = margin

    def detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        """Merged face boxes with scores, best first, at most ``max_faces``."""
        h, w = rgb.shape[:2]
        found: list[tuple[Box, float]] = []
        for det in self.detectors:
            for d in det.process(rgb).detections or []:
                r = d.location_data.relative_bounding_box
                x0, y0 = max(int(r.xmin * w), 0), max(int(r.ymin * h), 0)
                x1, y1 = min(int((r.xmin + r.width) * w), w), min(int((r.ymin + r.height) * h), h)
                if x1 - x0 >= 2 and y1 - y0 >= 2:
                    found.append(((x0, y0, x1 - x0, y1 - y0), float(d.score[0])))
        found.sort(key=lambda f: -f[1])
        kept: list[tuple[Box, float]] = []
        for box, score in found:
            if all(iou(box, k) < 0.3 for k, _ in kept):
                kept.append((box, score))
        return kept[: self.max_faces]

    def _mesh(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        h, w = rgb.shape[:2]
        x, y, bw, bh = box
        side = max(bw, bh) * (1 + 2 * self.margin)
        x0, y0 = int(max(x + bw / 2 - side / 2, 0)), int(max(y + bh / 2 - side / 2, 0))
        x1, y1 = int(min(x + bw / 2 + side / 2, w)), int(min(y + bh / 2 + side / 2, h))
        crop = rgb[y0:y1, x0:x1]
        scale = max(1.0, MIN_CROP / max(min(crop.shape[:2]), 1))
        if scale > 1:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        res = self.mesh.process(np.ascontiguousarray(crop))
        if not res.multi_face_landmarks:
            return None
        ch, cw = crop.shape[:2]
        pts = np.array([(p.x * cw, p.y * ch, p.z * cw) for p in res.multi_face_landmarks[0].landmark], np.float32)
        pts /= scale
        pts[:, 0] += x0
        pts[:, 1] += y0
        return pts

    def find(self, rgb: np.ndarray) -> list[FoundFace]:
        h, w = rgb.shape[:2]
        out = []
        for box, score in self.detect(rgb):
            pts = self._mesh(rgb, box)
            out.append(FoundFace(landmark_box(pts, w, h) if pts is not None else box, score, pts))
        return out

    def close(self) -> None:
        for m in (*self.detectors, self.mesh):
            m.close()
