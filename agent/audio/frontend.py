"""The session's microphone front end, one frame at a time: echo canceller -> VAD -> barge-in.

Used by the VAD stage (agent/pipeline.py) and by the echo benchmark, so both measure the same steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.audio.echo import EchoCanceller, make_echo_canceller
from agent.audio.sources import to_float
from agent.audio.vad import TurnDetector, VADEvent
from agent.config import Settings
from agent.playback import BargeInDetector


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
        echo it leaves (``session.echo_gain`` scaled by its residual)."""
        cfg = settings.session
        aec = aec or make_echo_canceller(cfg.aec, sample_rate, cfg.aec_delay_ms)
        barge = BargeInDetector(cfg.echo_gain * aec.residual, cfg.barge_in_ratio, cfg.barge_in_ms,
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
