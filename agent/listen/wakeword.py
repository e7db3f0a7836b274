"""Wake word: openWakeWord (ONNX) over the frame stream.

The command after the phrase is cut from the VAD utterance that holds it (agent/session/conductor.py keeps
``session.command.lookback_s`` before the detection), so the detector itself keeps no audio.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.common.config import WakeSettings
from agent.listen.sources import frames_of
from tools.common.errors import ModelMissingError
from tools.common.pcm import SAMPLE_RATE, to_float, to_int16

CHUNK = 1280  # openWakeWord scores one 80 ms chunk at a time


@dataclass(frozen=True)
class Detection:
    time_s: float  # stream time at which the score crossed the threshold
    score: float
    phrase: str

    def as_json(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


class WakeDetector(Protocol):
    def process(self, frame: np.ndarray) -> Detection | None:
        """Feed one int16 frame; return a detection when the wake phrase was just heard."""
        ...


def resolve_model(name: str) -> Path:
    """A bundled openWakeWord model name (``hey_jarvis``) or a path to an .onnx file."""
    direct = Path(name).expanduser()
    if direct.suffix == ".onnx":
        if not direct.is_file():
            raise ModelMissingError(f"wake-word model not found: {direct}")
        return direct
    import openwakeword

    folder = Path(openwakeword.__file__).parent / "resources" / "models"
    found = sorted(folder.glob(f"{name}_v*.onnx"))
    if not found:
        known = sorted({p.name.split("_v")[0] for p in folder.glob("*_v*.onnx")})
        raise ModelMissingError(f"unknown wake-word model '{name}' (known: {', '.join(known)})")
    return found[-1]


class WakeWordDetector:
    """openWakeWord with a threshold and a cooldown."""

    def __init__(self, settings: WakeSettings, sample_rate: int = SAMPLE_RATE) -> None:
        from openwakeword.model import Model

        self.settings = settings
        self.sample_rate = sample_rate
        path = resolve_model(settings.model)
        self.model = Model(wakeword_models=[str(path)], inference_framework="onnx")
        self.key = next(iter(self.model.models))
        self.reset()

    def reset(self) -> None:
        self.model.reset()
        self.pos = 0  # samples seen
        self._pending = np.zeros(0, np.int16)
        self._last: float | None = None
        self.last_score = 0.0

    def process(self, frame: np.ndarray) -> Detection | None:
        pcm = to_int16(frame)
        self.pos += len(pcm)
        self._pending = np.concatenate([self._pending, pcm])
        hit = None
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            score = float(self.model.predict(chunk)[self.key])
            self.last_score = score
            t = (self.pos - len(self._pending)) / self.sample_rate
            cooling = self._last is not None and t - self._last < self.settings.cooldown_s
            if score >= self.settings.threshold and not cooling and hit is None:
                self._last = t
                hit = Detection(t, score, self.settings.phrase)
        return hit

    def scores(self, audio: np.ndarray, pad_s: float = 1.0) -> np.ndarray:
        """Score of every 80 ms chunk of a recording (padded like ``detect``), for sweeps."""
        self.reset()
        pad = np.zeros(int(pad_s * self.sample_rate), np.float32)
        out = []
        for chunk in frames_of(np.concatenate([pad, to_float(audio), pad]), CHUNK):
            self.process(chunk)
            out.append(self.last_score)
        return np.asarray(out)

    def detect(self, audio: np.ndarray, frame_ms: int = 30, pad_s: float = 1.0) -> list[dict]:
        """All detections in a whole recording (silence padded at both ends, times unshifted)."""
        self.reset()
        pad = np.zeros(int(pad_s * self.sample_rate), np.float32)
        stream = np.concatenate([pad, to_float(audio), pad])
        hits = [d for d in map(self.process, frames_of(stream, self.sample_rate * frame_ms // 1000)) if d]
        return [Detection(round(d.time_s - pad_s, 3), d.score, d.phrase).as_json() for d in hits]

