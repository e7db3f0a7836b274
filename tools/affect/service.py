"""One place that holds the recognisers (loaded on first use) and fuses what they read.

``Affect.perceive(faces, audio, text)`` gives ``perceive``'s and the HTTP API's
``voice`` / ``text`` / ``fused`` fields; ``Affect.shared(settings)`` is the process-wide instance.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tools.affect.fusion import Fused, fuse_emotion, fuse_gender
from tools.affect.reading import ModalityReading
from tools.common.once import process_wide

if TYPE_CHECKING:
    from tools.affect.text import TextEmotion
    from tools.affect.voice import VoiceAnalyser, VoiceReading
    from tools.common.settings import AffectSettings


def face_reading(faces: Sequence[dict[str, Any]]) -> ModalityReading:
    """The main (largest) face's emotion over the frames given (scores averaged), or why there is none."""
    scored = [f for f in faces if f.get("emotion_scores")]
    if not scored:
        return ModalityReading.none("no face")
    from tools.vision.emotion import EMOTIONS

    return ModalityReading.of(np.mean([[f["emotion_scores"][e] for e in EMOTIONS] for f in scored], axis=0))


def main_faces(frames: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The largest face of each frame (boxes x1, y1, x2, y2)."""
    def area(f: dict[str, Any]) -> float:
        b = f["box"]
        return max(b[2] - b[0], 0) * max(b[3] - b[1], 0)

    return [max(fr["faces"], key=area) for fr in frames if fr.get("faces")]


class Affect:
    """Text and voice recognisers plus the fusion, configured by ``AffectSettings``."""

    def __init__(self, cfg: "AffectSettings", min_speech_s: float = 1.0) -> None:
        self.cfg, self.min_speech_s = cfg, min_speech_s
        self._text: "TextEmotion | None" = None
        self._voice: "VoiceAnalyser | None" = None
        self._lock = threading.Lock()

    @classmethod
    @process_wide
    def shared(cls, cfg: "AffectSettings", min_speech_s: float = 1.0) -> "Affect":
        """The process's instance for these settings (its models load once, on first use)."""
        return cls(cfg, min_speech_s)

    @property
    def text_model(self) -> "TextEmotion":
        with self._lock:
            if self._text is None:
                from tools.affect.text import TextEmotion

                self._text = TextEmotion(self.cfg.text_weights, self.cfg.text_lexicon, self.cfg.text_max_chars)
            return self._text

    @property
    def voice_model(self) -> "VoiceAnalyser":
        with self._lock:
            if self._voice is None:
                from tools.affect.voice import VoiceAnalyser

                self._voice = VoiceAnalyser(self.min_speech_s, self.cfg.music_threshold)
            return self._voice

    def text(self, text: str | None) -> ModalityReading:
        return self.text_model.read(text)

    def voice(self, audio: np.ndarray) -> "VoiceReading":
        return self.voice_model.read(audio)

    def fuse(self, face: ModalityReading | None = None, text: ModalityReading | None = None,
             voice: "VoiceReading | None" = None, faces: Sequence[dict[str, Any]] = ()) -> Fused:
        """Emotion from the modalities given (the voice has none yet: it drops out with its reason);
        gender from the face(s) and voice; age from the face(s)."""
        w = self.cfg.weights.model_dump()
        readings: dict[str, ModalityReading | None] = {}
        if face is not None:
            readings["face"] = face
        if text is not None:
            readings["text"] = text
        if voice is not None:
            from tools.affect.voice import NO_EMOTION

            readings["voice"] = ModalityReading.none(voice.reason or NO_EMOTION)
        f = fuse_emotion(readings, w, self.cfg.min_confidence)
        votes: dict[str, tuple[str | None, float | None]] = {}
        genders = [(x["gender"], x["gender_score"]) for x in faces if x.get("gender") and x.get("gender_score") is not None]
        if genders:
            p_male = float(np.mean([s if g == "male" else 1 - s for g, s in genders]))
            votes["face"] = ("male", p_male) if p_male >= 0.5 else ("female", 1 - p_male)
        if voice is not None:
            votes["voice"] = (voice.gender, voice.gender_score)
        gender, score = fuse_gender(votes, w, self.cfg.gender_min_score)
        ages = [x["age"] for x in faces if x.get("age") is not None]
        age = int(round(float(np.median(ages)))) if ages else None
        return Fused(f.emotion, f.scores, f.confidence, f.used, f.agreed, f.dropped, gender, score, age)

    def perceive(self, frames: Sequence[dict[str, Any]] | None = None, audio: np.ndarray | None = None,
                 text: str | None = None) -> dict[str, Any]:
        """``voice``, ``text`` and ``fused`` for whichever inputs are given (CLI.md, perceive)."""
        out: dict[str, Any] = {}
        faces = main_faces(frames) if frames is not None else []
        face = face_reading(faces) if frames is not None else None
        t = self.text(text) if text is not None else None
        v = self.voice(audio) if audio is not None else None
        if face is not None:
            out["face"] = face.as_json()
        if v is not None:
            out["voice"] = v.as_json()
        if t is not None:
            out["text"] = t.as_json()
        out["fused"] = self.fuse(face, t, v, faces).as_json()
        return out
