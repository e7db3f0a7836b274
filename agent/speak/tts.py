"""Text to speech: the TTS Protocol and its Piper implementation."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from agent.common.config import TTSSettings
from agent.common.models import PIPER_VOICES, model_path


class TTS(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks at ``sample_rate`` as soon as each is ready."""
        ...


class PiperTTS:
    """Piper (VITS, ONNX) with a voice from the model cache; one chunk per sentence."""

    def __init__(self, settings: TTSSettings, models_dir: Path) -> None:
        from piper import PiperVoice, SynthesisConfig

        self.settings, self.models_dir, self.name = settings, models_dir, settings.voice
        path = model_path(models_dir, PIPER_VOICES, settings.voice, "voice")
        self.voice = PiperVoice.load(str(path), config_path=str(path) + ".json")
        self.config = SynthesisConfig(length_scale=settings.length_scale)
        self.sample_rate = int(self.voice.config.sample_rate)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self.voice.synthesize(text, syn_config=self.config):
            yield chunk.audio_float_array.astype(np.float32, copy=False)

    def with_voice(self, name: str) -> PiperTTS:
        """The same settings with another voice (ModelMissingError if it is not installed)."""
        return PiperTTS(self.settings.model_copy(update={"voice": name}), self.models_dir)
