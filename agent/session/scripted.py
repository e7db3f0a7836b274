"""Conversations as audio sources: recorded and synthesised parts, and Wait steps that listen.

The demo (agent/app/demo.py), the session benchmark, the soak and the tests compose their sessions
from these; ``ensure_demo_profile`` enrols the demo user from the shared recordings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from agent.common.config import Settings
from agent.listen.sources import frames_of, paced
from tools.common.errors import ErrorCode, MMChatError
from tools.common.pcm import SAMPLE_RATE, level, resample, trim

DEMO_USER = "demo"


class Wait:
    """Script step: the user waits until the assistant is quiet, then ``after_s`` of silence."""

    def __init__(self, after_s: float = 1.0) -> None:
        self.after_s = after_s


class ScriptedSource:
    """A conversation as an AudioSource: audio parts, and Wait steps that listen for the assistant."""

    reconnect = None

    def __init__(self, parts: Sequence[np.ndarray | Wait | Callable[[], np.ndarray]], frame_ms: int = 30,
                 sample_rate: int = SAMPLE_RATE, settle_s: float = 1.5, realtime: bool = False) -> None:
        """``realtime``: frames come at their wall-clock pace, like a microphone (else as fast as read)."""
        self.parts, self.sample_rate, self.settle_s = parts, sample_rate, settle_s  # settle: VAD end + queues
        self.realtime = realtime
        self.frame_samples = sample_rate * frame_ms // 1000
        self.quiet = lambda: True

    def attach(self, runner: Any) -> None:
        """Called by SessionRunner: the assistant is quiet when no job runs and nothing plays."""
        self.quiet = lambda: not runner.busy and not runner.playback.ahead()

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._frames()
        return paced(frames, self.frame_samples / self.sample_rate) if self.realtime else frames

    def _frames(self) -> Iterator[np.ndarray]:
        silence = np.zeros(self.frame_samples, np.int16)
        for part in self.parts:
            if isinstance(part, Wait):
                for _ in range(int(self.settle_s * self.sample_rate) // self.frame_samples):
                    yield silence  # give the last utterance time to end before asking
                while not self.quiet():
                    yield silence
                part = np.zeros(int(part.after_s * self.sample_rate), np.float32)
            elif callable(part):  # audio made when it is reached (e.g. an answer to what was just said)
                part = part()
            yield from frames_of(part, self.frame_samples)


def synth(tts: Any, text: str) -> np.ndarray:
    """Piper speech at 16 kHz, trimmed and at a normal speaking level."""
    audio = np.concatenate(list(tts.synthesize(text)))
    return level(trim(resample(audio, tts.sample_rate)))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def ensure_demo_profile(settings: Settings, run: Path, say: Callable[[str], object] = print) -> Settings:
    """Use the configured profiles if they hold the demo user, else enrol it under runs/<time>/profiles."""
    from agent.identity.profiles import ProfileStore
    from agent.identity.verify import IdentityChecker

    if ProfileStore(settings.path(settings.paths.profiles)).exists(DEMO_USER):
        return settings
    settings = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"profiles": str(run / "profiles")})})
    data = settings.testdata_dir
    if not (data / "faces" / "enroll" / "obama").is_dir() or not (data / "speech").is_dir():
        raise MMChatError(f"demo recordings not found in {data} (paths.testdata in the config; relative paths "
                          "are taken from the config file's folder)", ErrorCode.AUDIO_MISSING)
    faces = sorted((data / "faces" / "enroll" / "obama").iterdir())
    voices = [data / "speech" / f"spk1_snt{i}.wav" for i in (1, 2, 3)]
    profile = IdentityChecker(settings).enroll(DEMO_USER, voices, faces)
    say(f"enrolled '{DEMO_USER}' in {run / 'profiles'}: voice spk1_snt1-3, face obama "
        f"({profile.as_json()['voice_samples']} voice, {profile.as_json()['face_samples']} face samples)")
    return settings
