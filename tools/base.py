"""Shared pieces for the perception tools: results, context and the mode set."""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Protocol

Mode = Literal["conversation", "tracking", "mapping", "privacy", "sleep"]
MODES: tuple[str, ...] = ("conversation", "tracking", "mapping", "privacy", "sleep")


@dataclass(frozen=True)
class ToolResult:
    """What a tool hands back to the controller.

    ``summary`` is a plain sentence that is true by construction: the reply
    falls back to it when the LLM's wording is unusable.
    """

    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def unavailable(cls, what: str) -> "ToolResult":
        return cls(ok=False, summary=f"{what} is not available yet in this version, so I can't do that.",
                   data={"available": False})


class Perception(Protocol):
    """Read side of the live perception state (filled by the camera stage)."""

    def emotion(self) -> ToolResult: ...
    def user_emotion(self) -> str | None: ...
    def scene(self) -> ToolResult: ...
    def track(self, label: str) -> ToolResult: ...


class MapQuery(Protocol):
    """Read side of the SLAM map (filled by the mapping stage)."""

    def answer(self, question: str) -> ToolResult: ...


class ToolContext:
    """State the tools act on; thread-safe, shared with the session."""

    def __init__(self, perception: Perception | None = None, map_query: MapQuery | None = None,
                 mode: str = "conversation") -> None:
        self.perception = perception
        self.map_query = map_query
        self._mode = mode
        self._lock = threading.Lock()
        self.listeners: list = []  # callables(mode) told of each mode change
        self.affect: dict | None = None  # the current turn's fused emotion (face + words), for read_emotion

    def saved(self, *names: str) -> Callable[[], None]:
        """Remember these attributes now; the returned function puts them back.

        A stage installs its service on the context on entry and restores what was there on exit.
        """
        before = {n: getattr(self, n) for n in names}

        def restore() -> None:
            for name, value in before.items():
                setattr(self, name, value)

        return restore

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def set_mode(self, mode: str) -> str:
        with self._lock:
            previous, self._mode = self._mode, mode
        for fn in self.listeners:
            fn(mode)
        return previous
