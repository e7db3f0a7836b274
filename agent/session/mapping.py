"""Connects the mapping stage to a turn: ``--map-frames`` / ``--map-video`` (+ ``--intrinsics``) on ``ask`` and ``turn``.

The sequence is mapped synchronously before the turn, with the object detector's boxes anchored
as labelled landmarks, and ``ctx.map_query`` answers ``query_map`` from that map.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np

from agent.common.config import Settings
from tools.base import ToolContext
from tools.common.errors import ErrorCode, MMChatError
from tools.slam.io import SequenceError, folder_frames, read_intrinsics, video_frames
from tools.slam.stage import MappingStage

ANCHOR_EVERY = 5  # run the detector on every 5th tracked frame


class MapHook:
    """Set ``ctx.map_query`` from a mapped sequence; ``ctx`` is left alone when no sequence is given.

    Intrinsics are read on construction (a bad path fails before any model loads);
    ``with MapHook(...) as stage`` maps the frames and yields the stage (or None).
    """

    def __init__(self, settings: Settings, ctx: ToolContext, frames: str | None = None, video: str | None = None,
                 intrinsics: str | None = None, detect: bool = True) -> None:
        self.settings, self.ctx, self.frames, self.video, self.detect = settings, ctx, frames, video, detect
        self.stage: MappingStage | None = None
        self._restore = ctx.saved("map_query")
        self.K: np.ndarray | None = None
        self.size: tuple[int, int] | None = None
        if frames or video:
            if not intrinsics:
                raise MMChatError("--map-frames/--map-video need --intrinsics K.yaml", ErrorCode.BAD_INPUT)
            try:
                self.K, self.size = read_intrinsics(intrinsics)
            except SequenceError as e:
                raise MMChatError(str(e), ErrorCode.BAD_INPUT) from None

    def __enter__(self) -> MappingStage | None:
        if self.K is None:
            return None
        detector = None
        if self.detect:
            from tools.vision.detector import load_detector

            detector = load_detector(self.settings)
        stage = MappingStage(self.K, self.settings.slam, detector, self.size, ANCHOR_EVERY)
        try:
            stage.run(folder_frames(self.frames) if self.frames else video_frames(cast(str, self.video)))
        except SequenceError as e:
            raise MMChatError(str(e), ErrorCode.BAD_INPUT) from None
        self.ctx.map_query = stage.query
        self.stage = stage
        return stage

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def report(self) -> dict[str, Any]:
        """The map's counts for the command's JSON (empty when nothing was mapped)."""
        return {"map": self.stage.summary()} if self.stage is not None else {}
