"""Turns: the conductor's rules, its queues and jobs, and what it holds for each utterance id.

Work on a turn starts at its first pause (speculative ASR, the voice check) and is kept if the
utterance ends there; a turn is answered once its check and transcript are in and it has ended.
"""
from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from agent.common.config import SessionSettings
from agent.session.stages import Utterance

if TYPE_CHECKING:
    from agent.identity.verify import Decision

Verdict = Literal["accept", "reject", "key"]  # key: the utterance was the passphrase, never a turn


@dataclass
class KeyState:
    """The audio-key steps still due on a turn the gate passed (agent/session/key_steps.py)."""

    res: Decision
    steps: list[str]  # "passphrase", "challenge", in that order
    utt: Utterance
    passphrase: bool
    busy: bool = False  # a step's check or prompt is out


@dataclass
class PendingTurn:
    heard_at: float  # perf_counter when its words were heard (latency is measured from here)
    start: float = 0.0  # stream time of the admitted audio's start (after the wake-word cut)
    asr_end: float | None = None  # stream end of the audio the current transcript is of
    final: bool | None = None  # False: only a pause so far; None: not followed (a voice re-check)
    verify: Verdict | None = None
    transcript: tuple[str, str | None] | None = None  # (text, error)
    asr_at: float | None = None
    refusal: str | None = None  # said once the turn has ended
    key: KeyState | None = None

    @property
    def ready(self) -> bool:
        """Check and transcript are both in, and the utterance has ended."""
        return self.verify is not None and self.transcript is not None and self.final is not False


@dataclass(frozen=True)
class TurnPolicy:
    """The conductor's turn-taking rules (times in stream seconds)."""

    face_checks: bool = False  # while unlocked, look for the face every face_check_s
    face_check_s: float = 2.0
    lookback_s: float = 0.3  # command audio kept from before the wake detection
    min_command_s: float = 0.5  # shorter leftovers after the wake word are not a command
    reverify_min_s: float | None = None  # later turns this long are voice-checked (None: never)
    wake_echo_s: float = 1.5  # a wake word within this of our own playback is its echo
    barge_lead_s: float = 0.5  # a barge-in this soon before an utterance belongs to it
    preroll_s: float = 0.3  # the VAD's pre-roll at an utterance's start is not speech

    @classmethod
    def from_settings(cls, cfg: SessionSettings, face_checks: bool) -> "TurnPolicy":
        return cls(face_checks, cfg.face.check_s, cfg.command.lookback_s, cfg.command.min_s,
                   cfg.turns.reverify_min_s if cfg.turns.reverify_voice else None)


@dataclass(frozen=True)
class Lanes:
    """The queues of the session thread: ``hub`` in (stage events and results), jobs out."""

    hub: queue.Queue = field(default_factory=queue.Queue)
    gate: queue.Queue = field(default_factory=queue.Queue)
    asr: queue.Queue = field(default_factory=queue.Queue)
    speak: queue.Queue = field(default_factory=queue.Queue)


@dataclass(frozen=True)
class VerifyJob:
    utt: Utterance


@dataclass(frozen=True)
class FaceJob:
    t: float


@dataclass(frozen=True)
class VoiceJob:
    """A later turn while unlocked: does the speaker still match the unlocked user?"""

    utt: Utterance
    user: str
