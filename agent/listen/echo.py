"""Acoustic echo cancellation: our own reply taken out of the microphone signal.

The session knows exactly what the loudspeaker plays (``Playback.segment``, the
*reference*). WebRTC's echo canceller (AEC3, from the audio processing module
that ships in the ``livekit`` wheel) is given that reference and the microphone,
10 ms at a time, and returns the microphone with the echo removed. Downstream
(VAD, barge-in, wake word, ASR) then hears the user rather than the assistant.

``residual`` is the share of the echo (in RMS) a canceller is expected to leave;
the barge-in detector scales the expected echo by it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tools.common.errors import ErrorCode, MMChatError
from tools.common.pcm import to_int16

if TYPE_CHECKING:
    from agent.common.config import EchoSettings


class EchoCanceller(Protocol):
    residual: float

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """``mic``: int16 frame; ``reference``: float frame of what was played meanwhile; int16 out."""
        ...


class NoEchoCanceller:
    """Pass-through: the echo stays (turn-taking then relies on gating alone)."""

    residual = 1.0

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return mic


class WebRtcEchoCanceller:
    """WebRTC AEC3 (plus its high-pass filter) through livekit's AudioProcessingModule.

    ``delay_ms`` is the time from a sample being handed to the loudspeaker to its
    echo reaching the microphone buffer (0 for recordings, where the echo is mixed
    on the stream clock; the device latencies for live audio). AEC3 also estimates
    the delay itself; a good starting value only speeds up convergence.
    """

    residual = 0.1  # -20 dB: a margin for real rooms; a simulated room measures ~50 dB (main.py bench: aec_erle)

    RATES = (8000, 16000, 32000, 48000)  # what the module runs at

    def __init__(self, sample_rate: int = 16000, delay_ms: int = 0) -> None:
        if sample_rate not in self.RATES:
            raise MMChatError(f"echo cancellation runs at {self.RATES} Hz, not {sample_rate}; set session.echo.aec: none",
                              ErrorCode.CONFIG)
        try:
            from livekit import rtc
        except ImportError as e:  # pragma: no cover - install.sh provides it
            raise MMChatError(f"echo cancellation needs the livekit package ({e}); set session.echo.aec: none",
                              ErrorCode.CONFIG) from e
        self.rtc = rtc
        self.sample_rate = sample_rate
        self.block = sample_rate // 100  # 10 ms: the only frame size the module takes
        self.apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self.apm.set_stream_delay_ms(delay_ms)

    def _frame(self, pcm: np.ndarray) -> Any:  # livekit's AudioFrame
        return self.rtc.AudioFrame(np.ascontiguousarray(pcm, np.int16).tobytes(), self.sample_rate, 1, self.block)

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        if len(mic) % self.block or len(reference) != len(mic):  # a partial block would break its continuity
            raise ValueError(f"echo canceller frames must be whole 10 ms blocks ({self.block} samples) with a "
                             f"reference of the same length; got {len(mic)} and {len(reference)}")
        ref = to_int16(reference)
        out = to_int16(mic).copy()
        for i in range(0, len(out), self.block):
            far, near = self._frame(ref[i:i + self.block]), self._frame(out[i:i + self.block])
            self.apm.process_reverse_stream(far)
            self.apm.process_stream(near)
            out[i:i + self.block] = np.frombuffer(near.data, np.int16)
        return out


class RoomEcho:
    """A simulated loudspeaker-to-microphone path for recordings: what a room would add to the mic.

    ``gain`` (RMS coupling) times the reference, delayed by ``delay_ms`` (device
    buffers and the air gap) and smeared by a short, exponentially decaying
    reflection tail (``decay_ms``; fixed seed). A real echo path always has both;
    a zero-delay copy of the reference is a degenerate case no room produces.
    Streaming: filter state carries over between frames.
    """

    def __init__(self, gain: float, delay_ms: int = 20, decay_ms: float = 6.0, sample_rate: int = 16000,
                 seed: int = 0) -> None:
        d, n = sample_rate * delay_ms // 1000, int(sample_rate * decay_ms * 5 / 1000)
        tail = np.exp(-np.arange(n) / (sample_rate * decay_ms / 1000)) * np.random.default_rng(seed).standard_normal(n)
        tail[0] = 3.0  # the direct sound dominates the reflections
        self.h = gain * np.concatenate([np.zeros(d), tail]) / np.linalg.norm(tail)
        self.zi = np.zeros(len(self.h) - 1)

    @classmethod
    def for_session(cls, cfg: EchoSettings, sample_rate: int = 16000) -> "RoomEcho":
        """The room of ``session.echo.gain`` / ``session.echo.delay_ms``."""
        return cls(cfg.gain, cfg.delay_ms, sample_rate=sample_rate)

    def __call__(self, reference: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        y, self.zi = lfilter(self.h, [1.0], np.asarray(reference, np.float64), zi=self.zi)
        return y.astype(np.float32)

    def apply(self, reference: np.ndarray) -> np.ndarray:
        """A whole signal through a fresh copy of this path (state untouched)."""
        from scipy.signal import lfilter

        return lfilter(self.h, [1.0], np.asarray(reference, np.float64)).astype(np.float32)


def make_echo_canceller(kind: str, sample_rate: int = 16000, delay_ms: int = 0) -> EchoCanceller:
    if kind == "webrtc":
        return WebRtcEchoCanceller(sample_rate, delay_ms)
    return NoEchoCanceller()


def erle_db(echo: np.ndarray, residual: np.ndarray) -> float:
    """Echo return loss enhancement: how much quieter the echo is after cancellation, in dB."""
    e = float(np.mean(np.square(np.asarray(echo, np.float64))))
    r = float(np.mean(np.square(np.asarray(residual, np.float64))))
    return 10.0 * np.log10(max(e, 1e-12) / max(r, 1e-12))
