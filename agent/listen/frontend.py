"""The session's microphone front end, one frame at a time: echo canceller -> VAD -> barge-in.

Used by the VAD stage (agent/session/stages.py) and by the echo benchmark, so both measure the same steps.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.common.config import Settings
from agent.listen.echo import EchoCanceller, make_echo_canceller
from agent.listen.vad import TurnDetector, VADEvent
from tools.common.pcm import rms, to_float


class BargeInDetector:
    """User speech over our own playback: VAD-voiced frames clearly louder than the expected echo.

    The expected echo of a frame is ``echo_gain`` times the RMS of what we play at
    that moment (the runner scales it by what the echo canceller leaves); a frame
    counts when the mic RMS is ``ratio`` times above it (and above a small floor).
    ``need_ms`` of such frames within twice that span is a barge-in -- a window, like
    the start of speech, because the canceller ducks some frames of double talk.
    Echo alone sits near the expected level, so the assistant cannot interrupt itself.
    """

    def __init__(self, echo_gain: float, ratio: float, need_ms: int, frame_ms: int, floor: float = 0.005) -> None:
        self.echo_gain, self.ratio, self.floor = echo_gain, ratio, floor
        self.need = max(1, need_ms // frame_ms)
        self.window: collections.deque[bool] = collections.deque(maxlen=2 * self.need)

    def feed(self, mic: np.ndarray, reference: np.ndarray, voiced: bool) -> bool:
        if not reference.any():  # we are silent: nothing to interrupt
            self.window.clear()
            return False
        expected = self.echo_gain * rms(reference)
        self.window.append(voiced and rms(mic) >= max(self.floor, self.ratio * expected))
        if sum(self.window) >= self.need:
            self.window.clear()
            return True
        return False


class Voiced(Protocol):
    last: bool  # the VAD's answer for the latest frame


@dataclass
class FrontEndStep:
    pcm: np.ndarray  # int16, echo cancelled
    event: VADEvent | None  # speech start / end of a turn
    barge_in: bool  # the user talks over our playback
    aec_s: float
    vad_s: float


class FrontEnd:
    def __init__(self, aec: EchoCanceller, turns: TurnDetector, voiced: Voiced, barge: BargeInDetector) -> None:
        self.aec, self.turns, self.voiced, self.barge = aec, turns, voiced, barge

    @classmethod
    def from_settings(cls, settings: Settings, turns: TurnDetector, voiced: Voiced, sample_rate: int,
                      aec: EchoCanceller | None = None) -> "FrontEnd":
        """The configured canceller (unless ``aec`` is given), and a barge-in detector expecting the
        echo it leaves (``session.echo.gain`` scaled by its residual)."""
        echo, turn = settings.session.echo, settings.session.turns
        aec = aec or make_echo_canceller(echo.aec, sample_rate, echo.aec_delay_ms)
        barge = BargeInDetector(echo.gain * aec.residual, turn.barge_in_ratio, turn.barge_in_ms,
                                settings.vad.frame_ms)
        return cls(aec, turns, voiced, barge)

    def process(self, pcm: np.ndarray, reference: np.ndarray) -> FrontEndStep:
        """``pcm``: the mic frame (int16, echo included); ``reference``: what we played meanwhile."""
        t0 = time.perf_counter()
        clean = self.aec.process(pcm, reference)
        t1 = time.perf_counter()
        event = self.turns.process(clean)  # turn state also sets the VAD's hysteresis
        barged = self.barge.feed(to_float(clean), reference, self.voiced.last)
        return FrontEndStep(clean, event, barged, t1 - t0, time.perf_counter() - t1)
