"""The session state machine: LOCKED -> (wake) -> VERIFYING -> (accept) -> ACTIVE -> LOCKED.

Pure logic on stream time, no threads and no models: the pipeline feeds it what
happened and asks it what is allowed. While not ACTIVE no utterance reaches the
controller (so no tool can run). ACTIVE ends on idle timeout, the face leaving
the view, a goodbye, or a switch to a locking mode (privacy/sleep) reported by
``tools.ToolContext`` listeners. Every change is an event ``{t, type, ...}``.
"""
from __future__ import annotations

import re
import threading
from enum import Enum
from typing import Any, Callable

from agent.common.config import SessionSettings
from agent.session.events import EventType, SessionEvent

Emit = Callable[[dict[str, Any]], None]


class State(str, Enum):
    LOCKED = "locked"
    VERIFYING = "verifying"
    ACTIVE = "active"


class Session:
    """Holds the state, the unlocked user and the timers; records events in ``events``."""

    def __init__(self, settings: SessionSettings, emit: Emit | None = None) -> None:
        self.settings = settings
        self.state = State.LOCKED
        self.user: str | None = None
        self.events: list[dict[str, Any]] = []
        self._emit = emit
        self._lock = threading.Lock()
        self._wake_at = 0.0
        self._last_heard = 0.0
        self._face_misses = 0
        self._pending_mode: str | None = None
        self._challenged = False  # a challenge is out (agent.identity.audio_key): its own deadline, not the wake timeout
        words = "|".join(re.escape(w) for w in settings.command.goodbye)
        self._goodbye = re.compile(rf"\b({words})\b", re.I) if words else None

    # -- events -------------------------------------------------------------------------
    def event(self, t: float, type_: EventType, **fields: Any) -> dict[str, Any]:
        """Record and emit one event (its wire form, a dict, is returned)."""
        e = SessionEvent(t, EventType(type_), fields).as_dict()
        with self._lock:
            self.events.append(e)
        if self._emit:
            self._emit(e)
        return e

    @property
    def active(self) -> bool:
        return self.state is State.ACTIVE

    # -- transitions ----------------------------------------------------------------------
    def wake(self, t: float, score: float, phrase: str) -> bool:
        """A wake word: LOCKED -> VERIFYING (ignored in other states)."""
        if self.state is not State.LOCKED:
            self.event(t, EventType.IGNORED, what="wake", reason=f"already {self.state.value}")
            return False
        self.state, self._wake_at = State.VERIFYING, t
        self.event(t, EventType.WAKE, score=round(score, 3), phrase=phrase)
        return True

    def command_started(self, t: float) -> None:
        """Speech is being checked: the wake timeout no longer applies."""
        self._wake_at = max(self._wake_at, t)

    def verified(self, t: float, result: dict[str, Any]) -> bool:
        """Gate result (``decision`` accept/reject, ``user``, ``reason``, ...)."""
        self.event(t, EventType.VERIFY, **result)
        if self.state is not State.VERIFYING:
            return False
        if result.get("decision") == "accept" and result.get("user"):
            return self.unlock(t, result["user"])
        self.lock(t, "verification failed")
        return False

    def unlock(self, t: float, user: str) -> bool:
        """VERIFYING -> ACTIVE for ``user`` (after the gate, or the audio key's last step)."""
        if self.state is not State.VERIFYING:
            return False
        self.state, self.user, self._challenged = State.ACTIVE, user, False
        self._last_heard, self._face_misses = t, 0
        self.event(t, EventType.UNLOCK, user=self.user)
        return True

    def challenged(self, t: float, **fields: Any) -> None:
        """A challenge was asked: the session waits for the answer (``challenge`` event, no secret in it)."""
        self._challenged = True
        self.event(t, EventType.CHALLENGE, **fields)

    def heard(self, t: float) -> None:
        """User speech while active restarts the idle timer."""
        self._last_heard = max(self._last_heard, t)

    def is_goodbye(self, text: str) -> bool:
        return bool(self._goodbye and self._goodbye.search(text or ""))

    def mode_changed(self, mode: str) -> None:
        """ToolContext listener (the controller thread; the session thread for a gesture): remember a locking mode."""
        if mode in self.settings.turns.lock_modes:
            with self._lock:
                self._pending_mode = mode

    def after_reply(self, t: float) -> bool:
        """Apply a locking mode switch once its reply is spoken; True if the session locked."""
        with self._lock:
            mode, self._pending_mode = self._pending_mode, None
        if mode and self.state is not State.LOCKED:
            self.lock(t, f"{mode} mode")
            return True
        return False

    def face_seen(self, t: float, present: bool) -> bool:
        """Face presence while active; ``face.gone_checks`` misses in a row lock. True if locked."""
        if self.state is not State.ACTIVE:
            return False
        self._face_misses = 0 if present else self._face_misses + 1
        if self._face_misses >= self.settings.face.gone_checks:
            self.lock(t, "face gone")
            return True
        return False

    def tick(self, t: float, busy: bool = False) -> bool:
        """Timeouts on stream time (not while a turn is in progress). True if the session locked."""
        if busy:
            return False
        if self.state is State.VERIFYING and not self._challenged and t - self._wake_at > self.settings.command.wake_timeout_s:
            self.lock(t, "no command after the wake word")
            return True
        if self.state is State.ACTIVE and t - self._last_heard > self.settings.turns.idle_timeout_s:
            self.lock(t, "idle timeout")
            return True
        return False

    def lock(self, t: float, reason: str) -> None:
        if self.state is State.LOCKED:
            return
        user, self.state, self.user, self._challenged = self.user, State.LOCKED, None, False
        self.event(t, EventType.LOCK, reason=reason, user=user)
