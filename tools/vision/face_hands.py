"""Per-frame face and hand analysis: face mesh + emotion, hands + gestures.

``FaceHandsAnalyser.analyse(bgr)`` returns a ``FrameResult``; bad input raises
``MMChatError`` (``image-invalid``), an empty frame gives empty lists.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from tools.affect.face_attributes import NO_ATTRIBUTES, AgeGenderModel, FaceAttributeCache, FaceAttributes
from tools.common.settings import ToolSettings, VisionSettings
from tools.vision.emotion import (
    EMOTIONS,
    EmotionModel,
    EmotionSmoother,
    FerEmotion,
    LandmarkEmotion,
    fer_model_path,
    normalise,
)
from tools.vision.faces import Box, FaceFinder, FoundFace
from tools.vision.gestures import GestureDebouncer, GestureRecognizer
from tools.vision.images import as_bgr as as_bgr  # one loader; re-exported
from tools.vision.images import load_image as load_image

INDEX_TIP = 8


@dataclass
class FaceResult:
    box: Box
    emotion: str
    emotion_scores: dict[str, float]
    landmarks: np.ndarray | None = field(repr=False)  # (478, 3) in pixels; None when no mesh fitted
    attributes: FaceAttributes = NO_ATTRIBUTES  # age, gender (tools/affect/face_attributes.py)

    def to_json(self) -> dict[str, Any]:
        return {"box": list(self.box), "emotion": self.emotion, "emotion_scores": self.emotion_scores,
                **self.attributes.as_json()}


@dataclass
class HandResult:
    gesture: str
    score: float
    handedness: str  # MediaPipe's label, which assumes a mirrored (selfie) image
    landmarks: np.ndarray = field(repr=False)  # (21, 3)
    motion: str | None = None  # dynamic gesture of a pointing finger, once 16 frames are seen

    def to_json(self) -> dict[str, Any]:
        return {"gesture": self.gesture, "score": round(self.score, 3), "handedness": self.handedness,
                "motion": self.motion}


@dataclass
class FrameResult:
    width: int
    height: int
    faces: list[FaceResult] = field(default_factory=list)
    hands: list[HandResult] = field(default_factory=list)
    action: str | None = None  # debounced gesture action (a mode name or 'confirm')
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"faces": [f.to_json() for f in self.faces], "hands": [h.to_json() for h in self.hands],
                "action": self.action}


def _points(landmarks: Any, width: int, height: int) -> np.ndarray:
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks.landmark], np.float32)


class FaceHandsAnalyser:
    """Faces (detector -> mesh per crop -> emotion) and hands (MediaPipe Hands -> gestures).

    ``video=True`` lets MediaPipe Hands track between frames, smooths emotion
    per face (EMA) and runs it every ``emotion_every`` frames (others reuse the
    scores); ``video=False`` treats each frame as an unrelated photo.
    """

    def __init__(self, settings: ToolSettings, video: bool = False, faces: bool = True, hands: bool = True) -> None:
        import mediapipe as mp

        self.cfg: VisionSettings = settings.vision
        cfg = self.cfg
        self.video = video
        self.face_finder = FaceFinder(cfg.max_faces, cfg.min_detection_confidence) if faces else None
        self.hand_model = mp.solutions.hands.Hands(
            static_image_mode=not video, max_num_hands=cfg.max_hands, model_complexity=cfg.hand_model_complexity,
            min_detection_confidence=cfg.min_detection_confidence) if hands else None
        self.emotion_models: list[tuple[EmotionModel, float]] = []
        if faces:
            fer = FerEmotion(fer_model_path(settings), pad=cfg.emotion_crop_pad)
            self.emotion_models.append((fer, cfg.emotion_weights.fer))
            if cfg.emotion_weights.landmarks > 0:
                self.emotion_models.append((LandmarkEmotion(), cfg.emotion_weights.landmarks))
        self.gestures = GestureRecognizer(min_score=cfg.gesture_min_score) if hands else None
        self.debouncer = GestureDebouncer(cfg.gesture_modes, cfg.gesture_hold_ms, cfg.gesture_hold_frames)
        self.smoother = EmotionSmoother(cfg.emotion_ema_alpha if video else 1.0)
        self.attributes = FaceAttributeCache(AgeGenderModel()) if faces and settings.affect.age_gender else None
        self._frame = 0

    def analyse(self, frame: Any, t_ms: float | None = None) -> FrameResult:
        """Faces and hands in one frame; ``t_ms`` (video time) drives the gesture debouncer."""
        bgr = as_bgr(frame)
        h, w = bgr.shape[:2]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        out = FrameResult(width=w, height=h)
        if self.face_finder is not None:
            out.faces = self._faces(rgb, bgr, out.timings_ms)
        if self.hand_model is not None:
            out.hands = self._hands(rgb, out.timings_ms)
            if t_ms is not None:
                out.action = self.debouncer.update(out.hands[0].gesture if out.hands else None, t_ms)
        self._frame += 1
        return out

    def _faces(self, rgb: np.ndarray, bgr: np.ndarray, timings: dict[str, float]) -> list[FaceResult]:
        assert self.face_finder is not None
        t0 = time.perf_counter()
        found = self.face_finder.find(rgb)
        timings["face_mesh"] = (time.perf_counter() - t0) * 1000
        if not found:
            self.smoother.reset()
            if self.attributes is not None:
                self.attributes.reset()
            return []
        boxes = [f.box for f in found]
        t0 = time.perf_counter()
        scores = self.smoother.match(boxes) if self.video and self._frame % self.cfg.emotion_every else None
        if scores is None:
            scores = self.smoother.update(boxes, self._emotion(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), found))
            timings["emotion"] = (time.perf_counter() - t0) * 1000
        attrs = [NO_ATTRIBUTES] * len(found)
        if self.attributes is not None:  # once per new face track in video, every face on a photo
            t0 = time.perf_counter()
            runs = self.attributes.runs
            attrs = self.attributes.attributes(rgb, boxes, self.video)
            if self.attributes.runs > runs:
                timings["age_gender"] = (time.perf_counter() - t0) * 1000
        return [FaceResult(box=f.box, emotion=EMOTIONS[int(s.argmax())],
                           emotion_scores={e: round(float(v), 4) for e, v in zip(EMOTIONS, s)},
                           landmarks=f.landmarks, attributes=a)
                for f, s, a in zip(found, scores, attrs)]

    def _emotion(self, gray: np.ndarray, found: list[FoundFace]) -> np.ndarray:
        """Fused (N, 6) probabilities; models needing landmarks skip faces without a mesh."""
        boxes = [f.box for f in found]
        total = np.zeros((len(found), len(EMOTIONS)), np.float32)
        for model, weight in self.emotion_models:
            rows = [i for i, f in enumerate(found) if f.landmarks is not None or not model.needs_landmarks]
            if rows and weight > 0:
                probs = model.predict(gray, [boxes[i] for i in rows], [found[i].landmarks for i in rows])
                total[rows] += weight * probs
        return normalise(total)

    def _hands(self, rgb: np.ndarray, timings: dict[str, float]) -> list[HandResult]:
        assert self.hand_model is not None and self.gestures is not None
        h, w = rgb.shape[:2]
        t0 = time.perf_counter()
        res = self.hand_model.process(rgb)
        timings["hands"] = (time.perf_counter() - t0) * 1000
        hands = []
        for lm, hd in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
            pts = _points(lm, w, h)
            g = self.gestures.shape(pts)
            hands.append(HandResult(g.label, g.score, hd.classification[0].label, pts))
        pointing = next((x for x in hands if x.gesture == "Pointer"), None)
        tip = (float(pointing.landmarks[INDEX_TIP, 0]), float(pointing.landmarks[INDEX_TIP, 1])) if pointing else None
        motion = self.gestures.motion(tip, w, h)
        if pointing is not None and motion is not None:
            pointing.motion = motion.label
        return hands

    def close(self) -> None:
        for m in (self.face_finder, self.hand_model):
            if m is not None:
                m.close()
