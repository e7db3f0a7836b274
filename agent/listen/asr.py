"""Speech to text: the ASR Protocol and its faster-whisper implementation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.common.config import ASRSettings
from agent.common.models import WHISPER_DIRS, model_path
from tools.common.errors import AudioError, ErrorCode
from tools.common.pcm import SAMPLE_RATE


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration_s: float


class ASR(Protocol):
    def transcribe(self, audio: np.ndarray) -> Transcript:
        """16 kHz float32 mono in, text out; raises AudioError(no-speech) on silence/noise."""
        ...


class WhisperASR:
    """faster-whisper (CTranslate2, ``asr.compute_type`` on CPU), greedy and timestamp-free for speed.

    Silero VAD (bundled with faster-whisper) drops non-speech first, so noise or
    silence gives a ``no-speech`` error instead of a hallucinated sentence.
    """

    def __init__(self, settings: ASRSettings, models_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        path = model_path(models_dir, WHISPER_DIRS, settings.model, "whisper model")
        self.model = WhisperModel(str(path), device="cpu", compute_type=settings.compute_type,
                                  cpu_threads=settings.cpu_threads)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        s = self.settings
        segments, info = self.model.transcribe(
            audio, language=s.language, beam_size=s.beam_size, temperature=0.0,
            without_timestamps=True, condition_on_previous_text=False,
            vad_filter=True, vad_parameters={"min_silence_duration_ms": 500},
        )
        text = " ".join(seg.text.strip() for seg in segments if seg.no_speech_prob < 0.8).strip()
        if not text:
            raise AudioError("no speech found in the audio", ErrorCode.NO_SPEECH)
        return Transcript(text=text, language=info.language, duration_s=round(len(audio) / SAMPLE_RATE, 3))
