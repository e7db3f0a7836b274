"""What a voice says about the speaker: gender (pyAudioAnalysis SVM) and arousal from prosody.

No speech-emotion model good enough ships in a registry package (``audioanalytics`` 0.1.3's
4-class RAVDESS Conv1D is the only one found), so the voice gives no emotion label:
``arousal`` is reported from pitch (Praat via ``parselmouth``) and loudness instead. Gender is
``pyAudioAnalysis`` 0.3.14's ``svm_rbf_speaker_male_female``; its ``svm_rbf_sm`` speech/music
SVM names music when the VAD finds too little speech. Silence, music or too little speech ->
``None`` fields with a reason.
"""
from __future__ import annotations

import os
import pickle
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tools.common.errors import MMChatError
from tools.common.pcm import SAMPLE_RATE, rms, speech_only

NO_EMOTION = "no speech-emotion model ships in a registry package; see arousal (prosody)"
NO_AGE = "no voice-age model ships in a registry package"
SILENCE_RMS = 1e-3  # quieter audio is silence: no speech/music check


class PaaSvm:
    """One of pyAudioAnalysis' bundled SVMs with its feature normalisation (pickles from the wheel)."""

    def __init__(self, name: str) -> None:
        import pyAudioAnalysis

        path = os.path.join(os.path.dirname(pyAudioAnalysis.__file__), "data", "models", name)
        with open(path + "MEANS", "rb") as f:  # the package's own format: 8 pickles in a row
            mean, std, classes, mid_w, mid_s, short_w, short_s, beat = (pickle.load(f) for _ in range(8))
        with open(path, "rb") as f:
            self.svm = pickle.load(f)
        self.mean, self.std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self.classes = [str(c).lower() for c in classes]
        self.mid_w, self.mid_s, self.short_w, self.short_s, self.beat = mid_w, mid_s, short_w, short_s, beat

    def proba(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
        """Class probabilities for a whole clip (mid-term features averaged, as the package does)."""
        from pyAudioAnalysis import MidTermFeatures as mtf

        mid_w = min(self.mid_w, audio.size / sr)
        feats, short, _ = mtf.mid_feature_extraction(audio.astype(np.float64) * 32767, sr, mid_w * sr,
                                                     self.mid_s * sr, round(sr * self.short_w),
                                                     round(sr * self.short_s))
        v = feats.mean(axis=1)
        if self.beat:
            v = np.append(v, mtf.beat_extraction(short, self.short_s))
        p = self.svm.predict_proba(((v - self.mean) / self.std).reshape(1, -1))[0]
        return {c: float(x) for c, x in zip(self.classes, p)}


@dataclass(frozen=True)
class Prosody:
    pitch_hz: float | None  # median F0 of voiced frames
    pitch_sd_semitones: float | None
    loudness_sd_db: float
    voiced_fraction: float
    arousal: float  # 0 calm .. 1 aroused
    level: str  # low | medium | high

    def as_json(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 2)  # noqa: E731
        return {"level": self.level, "score": r(self.arousal), "pitch_hz": r(self.pitch_hz),
                "pitch_sd_semitones": r(self.pitch_sd_semitones), "loudness_sd_db": r(self.loudness_sd_db),
                "voiced_fraction": r(self.voiced_fraction)}


def prosody(audio: np.ndarray, sr: int = SAMPLE_RATE) -> Prosody:
    """Pitch and loudness variation -> arousal: lively speech varies both. A fixed, untrained mapping
    (no labelled emotional speech to fit it on): pitch spread 1 -> 6 semitones and loudness spread
    4 -> 14 dB each run 0 -> 1; their mean is the score (calm read speech lands near the middle)."""
    import parselmouth

    snd = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=sr)
    f0 = snd.to_pitch(time_step=0.01, pitch_floor=60.0, pitch_ceiling=500.0).selected_array["frequency"]
    voiced = f0[f0 > 0]
    db = snd.to_intensity(minimum_pitch=60.0, time_step=0.01).values.ravel()
    db = db[db > db.max() - 40] if db.size else db
    loud_sd = float(np.std(db)) if db.size else 0.0
    if voiced.size >= 5:
        st = 12 * np.log2(voiced / np.median(voiced))
        pitch, pitch_sd = float(np.median(voiced)), float(np.std(st))
    else:
        pitch, pitch_sd = None, None
    score = float(0.5 * np.clip(((pitch_sd or 1.0) - 1.0) / 5.0, 0, 1) + 0.5 * np.clip((loud_sd - 4.0) / 10.0, 0, 1))
    level = "low" if score < 0.35 else "high" if score > 0.65 else "medium"
    return Prosody(pitch, pitch_sd, loud_sd, voiced.size / max(f0.size, 1), score, level)


@dataclass(frozen=True)
class VoiceReading:
    gender: str | None
    gender_score: float | None
    arousal: Prosody | None
    reason: str | None = None  # why there are no fields (silence, music, ...)
    speech_s: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"emotion": None, "emotion_scores": None, "emotion_reason": NO_EMOTION,
                               "gender": self.gender, "gender_score": self.gender_score, "age": None,
                               "age_reason": NO_AGE, "arousal": self.arousal.as_json() if self.arousal else None,
                               "speech_s": round(self.speech_s, 2)}
        if self.reason:
            out["reason"] = self.reason
        return out


class VoiceAnalyser:
    """Speech check (Silero VAD, then not music), gender and prosody of a 16 kHz mono clip."""

    def __init__(self, min_speech_s: float = 1.0, music_threshold: float = 0.5) -> None:
        self.min_speech_s, self.music_threshold = min_speech_s, music_threshold
        self._gender: PaaSvm | None = None
        self._music: PaaSvm | None = None
        self._lock = threading.Lock()

    def _models(self) -> tuple[PaaSvm, PaaSvm]:
        with self._lock:
            if self._gender is None or self._music is None:
                self._gender = PaaSvm("svm_rbf_speaker_male_female")
                self._music = PaaSvm("svm_rbf_sm")
            return self._gender, self._music

    def read(self, audio: np.ndarray) -> VoiceReading:
        import time

        t0 = time.perf_counter()
        gender_svm, music_svm = self._models()
        try:
            speech = speech_only(audio, self.min_speech_s)
        except MMChatError as e:  # silence, noise or music: name music when it is that
            loud = rms(audio) > SILENCE_RMS
            music = music_svm.proba(audio).get("music", 0.0) if loud else 0.0
            return VoiceReading(None, None, None, reason=f"music, not speech (p={music:.2f})"
                                if music >= self.music_threshold else str(e))
        # Speech that Silero found is trusted: the speech/music SVM took 18 of 80 dubbed lines (real speech)
        # for music, while every music track tried had too little speech for the VAD anyway.
        t1 = t2 = time.perf_counter()
        g = gender_svm.proba(speech)
        gender = max(g, key=lambda k: g[k])
        t3 = time.perf_counter()
        pro = prosody(speech)
        t4 = time.perf_counter()
        ms = {"vad": (t1 - t0) * 1e3, "gender": (t3 - t2) * 1e3,
              "prosody": (t4 - t3) * 1e3}
        return VoiceReading(gender, round(g[gender], 3), pro, speech_s=speech.size / SAMPLE_RATE,
                            timings_ms={k: round(v, 1) for k, v in ms.items()})
