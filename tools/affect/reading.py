"""The result one emotion recogniser gives for one input."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.vision.emotion import EMOTIONS


@dataclass(frozen=True)
class ModalityReading:
    """Emotion probabilities of one modality, or ``None`` fields and the ``reason`` why not."""

    emotion: str | None
    scores: dict[str, float] | None
    reason: str | None = None

    @classmethod
    def of(cls, probs: np.ndarray | list[float]) -> "ModalityReading":
        p = np.asarray(probs, dtype=np.float64)
        p = p / max(float(p.sum()), 1e-12)
        return cls(EMOTIONS[int(p.argmax())], {e: round(float(v), 4) for e, v in zip(EMOTIONS, p)})

    @classmethod
    def none(cls, reason: str) -> "ModalityReading":
        return cls(None, None, reason)

    @property
    def confidence(self) -> float:
        return float(self.scores[self.emotion]) if self.scores and self.emotion else 0.0

    def vector(self) -> np.ndarray | None:
        return None if self.scores is None else np.array([self.scores[e] for e in EMOTIONS])

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"emotion": self.emotion, "emotion_scores": self.scores}
        if self.reason:
            out["reason"] = self.reason
        return out
