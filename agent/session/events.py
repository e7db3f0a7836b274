"""The session's events: one type per thing that happened, as ``main.py run --json`` prints them.

Every event is ``{"t": stream seconds, "type": EventType value, ...fields}``; ``SessionEvent`` is the
typed form and ``as_dict`` the wire form (plain JSON values).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class EventType(str, Enum):
    # the state machine (agent/session/state.py)
    WAKE = "wake"
    VERIFY = "verify"
    UNLOCK = "unlock"
    LOCK = "lock"
    # the audio key (agent/session/key_steps.py)
    PASSPHRASE = "passphrase"
    CHALLENGE = "challenge"
    CHALLENGE_PASSED = "challenge_passed"
    CHALLENGE_FAILED = "challenge_failed"
    LOCKOUT = "lockout"
    # turns and replies (one per agent.speak.reply.ReplyKind)
    TRANSCRIPT = "transcript"
    TOOL_CALL = "tool_call"
    REPLY = "reply"
    REFUSAL = "refusal"
    GOODBYE = "goodbye"
    NOTICE = "notice"
    BARGE_IN = "barge_in"
    # the camera stage
    GESTURE = "gesture"
    # a live camera or microphone lost, reconnecting, back (tools/common/devices.py)
    DEVICE = "device"
    # what was not acted on, what failed, and the run's figures
    IGNORED = "ignored"
    ERROR = "error"
    STATS = "stats"


@dataclass(frozen=True)
class SessionEvent:
    t: float  # stream time, seconds
    type: EventType
    fields: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(float(self.t), 3), "type": self.type.value, **self.fields}
