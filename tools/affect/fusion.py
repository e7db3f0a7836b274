"""Late fusion: per-modality emotion probabilities -> one emotion with a confidence.

A weighted average of the modalities that have a reading; a modality with no reading, a
zero weight, or a top probability under ``min_confidence`` drops out (and says why).
Gender: the face's and the voice's P(male), weighted the same way; age: the face's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, cast

import numpy as np

from tools.affect.reading import ModalityReading
from tools.vision.emotion import EMOTIONS


@dataclass(frozen=True)
class Fused:
    emotion: str | None
    scores: dict[str, float] | None
    confidence: float | None
    used: list[str]
    agreed: list[str]  # modalities whose own top emotion is the fused one
    dropped: dict[str, str] = field(default_factory=dict)  # modality -> why it was left out
    gender: str | None = None
    gender_score: float | None = None
    age: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"emotion": self.emotion, "emotion_scores": self.scores,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "modalities": self.used, "agreed": self.agreed, "dropped": self.dropped,
                "gender": self.gender, "gender_score": self.gender_score, "age": self.age}


def fuse_emotion(readings: Mapping[str, ModalityReading | None], weights: Mapping[str, float],
                 min_confidence: float) -> Fused:
    total, used, dropped = np.zeros(len(EMOTIONS)), [], {}
    for name, r in readings.items():
        w = float(weights.get(name, 0.0))
        if r is None or r.scores is None:
            dropped[name] = r.reason if r is not None and r.reason else "no reading"
        elif w <= 0:
            dropped[name] = "weight 0"
        elif r.confidence < min_confidence:
            dropped[name] = f"unsure ({r.emotion} {r.confidence:.2f} < {min_confidence:g})"
        else:
            total += w * cast(np.ndarray, r.vector())  # scores checked above
            used.append(name)
    if not used:
        return Fused(None, None, None, [], [], dropped)
    p = total / total.sum()
    best = EMOTIONS[int(p.argmax())]
    agreed = [n for n in used if readings[n].emotion == best]  # type: ignore[union-attr]
    return Fused(best, {e: round(float(v), 4) for e, v in zip(EMOTIONS, p)}, float(p.max()), used, agreed, dropped)


def fuse_gender(votes: Mapping[str, tuple[str | None, float | None]], weights: Mapping[str, float],
                min_score: float) -> tuple[str | None, float | None]:
    """``{modality: (gender, its probability)}`` -> (gender, probability); unsure votes drop out."""
    num = den = 0.0
    for name, (g, s) in votes.items():
        w = float(weights.get(name, 0.0))
        if g in ("male", "female") and s is not None and s >= min_score and w > 0:
            num += w * (s if g == "male" else 1.0 - s)
            den += w
    if den == 0:
        return None, None
    p_male = num / den
    return ("male", round(p_male, 3)) if p_male >= 0.5 else ("female", round(1.0 - p_male, 3))
