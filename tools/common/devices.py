"""Live devices that come and go (a camera unplugged, a stream URL's server restarted, a microphone lost).

A ``Reconnector`` holds one device's state (up / down / reconnecting), tells its listeners each
change as a ``DeviceStatus``, and paces reopen attempts with a ``Backoff`` (0.5 s doubling to 8 s,
reset on success). ``attempt`` never blocks (a source that must keep yielding, the microphone);
``reopen`` waits between attempts until the device is back or ``cancel`` is called (the camera reader).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tools.common.settings import DeviceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class DeviceState(str, Enum):
    UP = "up"
    DOWN = "down"  # just lost
    RECONNECTING = "reconnecting"  # a reopen attempt failed; still trying


@dataclass(frozen=True)
class DeviceStatus:
    """One change of a device's state (``reason``: why it went down, or what the last attempt said)."""

    device: str  # "camera", "microphone"
    state: DeviceState
    reason: str = ""
    attempts: int = 0  # failed reopen attempts so far in this outage
    t: float = field(default_factory=time.monotonic)


StatusListener = Callable[[DeviceStatus], object]


class Backoff:
    """Delays between attempts: ``first`` doubling up to ``cap``; ``reset`` after a success."""

    def __init__(self, first: float = 0.5, cap: float = 8.0, factor: float = 2.0) -> None:
        self.first, self.cap, self.factor = first, cap, factor
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first

    @classmethod
    def of(cls, cfg: DeviceSettings) -> Backoff:
        """The configured back-off (``devices.backoff_first_s`` doubling to ``backoff_cap_s``)."""
        return cls(cfg.backoff_first_s, cfg.backoff_cap_s)


class Reconnector:
    """One device's up/down state and its paced reopen attempts; ``listeners`` hear every change."""

    def __init__(self, device: str, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.device, self.backoff, self.clock = device, backoff or Backoff(), clock
        self.state = DeviceState.UP
        self.listeners: list[StatusListener] = []
        self.outages = 0
        self.attempts = 0
        self._due = 0.0  # clock time of the next allowed attempt
        self._cancel = threading.Event()

    @property
    def up(self) -> bool:
        return self.state is DeviceState.UP

    def _set(self, state: DeviceState, reason: str) -> None:
        if state is self.state:
            return
        self.state = state
        status = DeviceStatus(self.device, state, reason, self.attempts, self.clock())
        (log.info if state is DeviceState.UP else log.warning)("%s %s%s", self.device, state.value,
                                                                  f": {reason}" if reason else "")
        for fn in list(self.listeners):
            try:
                fn(status)
            except Exception as e:  # noqa: BLE001 - a listener must not stop the device's reader
                log.warning("%s status listener failed: %s", self.device, e)

    def lost(self, reason: str) -> None:
        """The device stopped working: DOWN (once per outage); the first reopen is due after one delay."""
        if self.up:
            self.outages += 1
            self.attempts = 0
            self.backoff.reset()
            self._due = self.clock() + self.backoff.next()
            self._set(DeviceState.DOWN, reason)

    def attempt(self, open_fn: Callable[[], T]) -> T | None:
        """Try ``open_fn`` if its back-off delay has passed (else None at once); UP on success, else
        RECONNECTING and the next delay doubles. ``open_fn`` raises (or returns None) when it fails."""
        if self.up or self.clock() < self._due:
            return None
        try:
            opened = open_fn()
            failure = "not available" if opened is None else ""
        except Exception as e:  # noqa: BLE001 - a failed reopen is the normal case while the device is gone
            opened, failure = None, f"{type(e).__name__}: {e}"
        if opened is None:
            self.attempts += 1
            self._due = self.clock() + self.backoff.next()
            self._set(DeviceState.RECONNECTING, failure)
            return None
        self.backoff.reset()
        self._set(DeviceState.UP, f"after {self.attempts + 1} attempt{'s' if self.attempts else ''}")
        return opened

    def reopen(self, open_fn: Callable[[], T]) -> T | None:
        """Block until ``open_fn`` succeeds (attempts paced by the back-off); None once ``cancel`` is called."""
        if self.up:
            raise RuntimeError(f"{self.device}: reopen() before lost()")
        while not self._cancel.is_set():
            opened = self.attempt(open_fn)
            if opened is not None:
                return opened
            self._cancel.wait(max(self._due - self.clock(), 0.0))
        return None

    def cancel(self) -> None:
        """Stop waiting in ``reopen`` (the reader is being stopped)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()
