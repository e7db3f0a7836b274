"""Audio sources: fixed-size 16 kHz int16 frames from a file or the microphone.

Both sources are iterables of frames, so the VAD and wake word see the same
stream whether it comes from a recording (paced like a live device, or as
fast as possible for tests and benchmarks) or from a microphone.
"""
from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from agent.common.audio_io import load_audio
from tools.common.errors import ErrorCode, MMChatError
from tools.common.pcm import SAMPLE_RATE, to_float, to_int16


class AudioSource(Protocol):
    """An iterable of mono int16 frames of ``frame_samples`` at ``sample_rate``."""

    sample_rate: int
    frame_samples: int

    def __iter__(self) -> Iterator[np.ndarray]: ...


def frames_of(audio: np.ndarray, frame_samples: int) -> Iterator[np.ndarray]:
    """Split audio into int16 frames; the last partial frame is zero-padded."""
    pcm = to_int16(audio)
    for start in range(0, len(pcm), frame_samples):
        frame = pcm[start:start + frame_samples]
        if len(frame) < frame_samples:
            frame = np.pad(frame, (0, frame_samples - len(frame)))
        yield frame


class FileSource:
    """A recording (any format load_audio reads, or an array) streamed as frames.

    With ``realtime=True`` each frame is released at its wall-clock time, like a
    microphone; with ``False`` the same code runs without sleeping.
    """

    def __init__(self, audio: str | Path | np.ndarray, frame_ms: int = 30, realtime: bool = False,
                 sample_rate: int = SAMPLE_RATE) -> None:
        self.audio = load_audio(audio, sample_rate) if isinstance(audio, (str, Path)) else to_float(audio)
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.realtime = realtime

    def __len__(self) -> int:
        return -(-len(self.audio) // self.frame_samples)

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = frames_of(self.audio, self.frame_samples)
        return paced(frames, self.frame_samples / self.sample_rate) if self.realtime else frames


def paced(frames: Iterable[np.ndarray], period_s: float) -> Iterator[np.ndarray]:
    """Release each frame at its wall-clock time, as a microphone would (a frame exists once recorded)."""
    t0 = time.monotonic()
    for i, frame in enumerate(frames):
        delay = t0 + (i + 1) * period_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield frame


def default_input_device() -> int:
    """Index of the default input device; DEVICE error when there is none."""
    try:
        import sounddevice as sd

        info = sd.query_devices(kind="input")
    except Exception:  # PortAudio missing, or no input device at all
        info = None
    if not info or int(info.get("max_input_channels", 0)) < 1:
        raise MMChatError("no microphone found; use --audio FILE", ErrorCode.DEVICE)
    return int(info["index"])


class MicSource:
    """The default microphone via sounddevice (PortAudio), frames from its callback."""

    def __init__(self, frame_ms: int = 30, sample_rate: int = SAMPLE_RATE, device: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.device = default_input_device() if device is None else device
        self._q: queue.Queue[np.ndarray] = queue.Queue(maxsize=1000)

    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        try:
            self._q.put_nowait(indata[:, 0].copy())
        except queue.Full:  # consumer stalled: drop rather than block the audio thread
            pass

    def __iter__(self) -> Iterator[np.ndarray]:
        import sounddevice as sd

        try:
            stream = sd.InputStream(samplerate=self.sample_rate, blocksize=self.frame_samples, channels=1,
                                    dtype="int16", device=self.device, callback=self._callback)
        except Exception as e:
            raise MMChatError(f"cannot open the microphone ({e}); use --audio FILE", ErrorCode.DEVICE) from None
        with stream:
            while True:
                yield self._q.get()
