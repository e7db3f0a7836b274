"""Gesture -> mode: a held hand shape on the camera stream selects the assistant's mode.

``GestureModeSwitch`` feeds the main hand's static gesture of every analysed
frame through ``GestureDebouncer``; once a mapped gesture is held long enough
(``vision.gesture_hold_ms`` and ``gesture_hold_frames``) it reports
``{"type": "gesture", "gesture", "action", "mode"}`` to its listeners. It only
reports: whoever listens applies the mode (the session thread, through
``ToolContext.set_mode``, in agent/session/conductor.py). An action that is not
a mode (``confirm``) is reported with ``mode`` None.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tools.base import MODES
from tools.vision.gestures import GestureDebouncer

if TYPE_CHECKING:
    from tools.common.settings import VisionSettings
    from tools.vision.state import Snapshot

log = logging.getLogger(__name__)
GestureListener = Callable[[dict[str, Any]], None]


class GestureModeSwitch:
    """Debounced gestures reported as the mode they select; thread-safe (the camera worker calls it)."""

    def __init__(self, mapping: Mapping[Any, str], hold_ms: float, hold_frames: int) -> None:
        self.debouncer = GestureDebouncer(mapping, hold_ms, hold_frames)
        self.listeners: list[GestureListener] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, cfg: VisionSettings) -> GestureModeSwitch:
        return cls(cfg.gesture_modes, cfg.gesture_hold_ms, cfg.gesture_hold_frames)

    def update(self, gesture: str | None, t_ms: float) -> dict[str, Any] | None:
        """One frame's main-hand gesture (None: no hand) at ``t_ms``; the event if an action fired."""
        with self._lock:
            action = self.debouncer.update(gesture, t_ms)
        if action is None:
            return None
        mode = action if action in MODES else None
        event = {"type": "gesture", "gesture": gesture, "action": action, "mode": mode}
        log.info("gesture %s held: %s", gesture, action)
        for fn in list(self.listeners):
            fn(event)
        return event

    def observe(self, snap: Snapshot) -> dict[str, Any] | None:
        """``FrameProcessor`` listener: the snapshot's main (first) hand at its capture time."""
        gesture = snap.hands[0]["gesture"] if snap.hands else None
        return self.update(gesture, 1000.0 * snap.t)
