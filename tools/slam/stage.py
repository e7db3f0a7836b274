"""The mapping stage: SLAM on camera frames beside perception, with detections anchored as landmarks.

``MappingStage.process`` tracks one frame and, every ``anchor_every`` tracked frames, runs the
object detector on that same frame and anchors each box to the map (:func:`anchor_detection`).
``run`` maps a whole sequence synchronously; ``start``/``offer`` run it live on a worker thread
that takes the newest offered frame at its own pace and only while the mode is ``mapping``
(``attach`` registers the mode listener and exposes :attr:`query` as ``ToolContext.map_query``).
``tools.vision.camera.TeeSource`` lets one camera feed both the perception stage and this one.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from tools.base import ToolContext
from tools.common.errors import ConfigError
from tools.common.settings import SlamSettings
from tools.slam.io import SequenceError, read_intrinsics
from tools.slam.map import Landmark, SlamMap
from tools.slam.objects import anchor_detection
from tools.slam.query import SlamMapQuery
from tools.slam.run import fit_width, slam_for
from tools.slam.system import FrameResult, MonocularSlam
from tools.vision.camera import LatestFrame, log_frame_error
from tools.vision.detector import ObjectDetector, as_bgr

log = logging.getLogger(__name__)
MAPPING_MODE = "mapping"


class Labelled(Protocol):
    """A detection: a label and an ``(x1, y1, x2, y2)`` box in the pixels of the frame given to SLAM."""

    @property
    def label(self) -> str: ...
    @property
    def box(self) -> Sequence[float]: ...


class MappingStage:
    """Runs :class:`MonocularSlam` on frames and anchors the detector's boxes as labelled landmarks.

    ``K`` is given for images of ``size`` (width, height); frames wider than ``settings.max_width``
    are downscaled with K, and the detector runs on the downscaled frame so boxes match the map.
    """

    def __init__(self, K: np.ndarray, settings: SlamSettings | None = None, detector: ObjectDetector | None = None,
                 size: tuple[int, int] | None = None, anchor_every: int = 5, min_score: float | None = None) -> None:
        self.K, self.cfg, self.size = np.asarray(K, float), settings or SlamSettings(), size
        self.detector, self.anchor_every, self.min_score = detector, max(1, anchor_every), min_score
        self.slam: MonocularSlam | None = None
        self.query = SlamMapQuery(lambda: self.map, self.cfg.metres_per_unit)
        self.active = threading.Event()  # live frames are mapped only while set
        self.frames = self.detections = 0
        self.frame_errors = 0  # live frames that failed (skipped; the worker keeps going)
        self.error: BaseException | None = None  # what stopped the worker (fatal)
        self._lock = threading.Lock()
        self._tracked = 0
        self._slot = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_camera(cls, settings: SlamSettings, detector: ObjectDetector | None = None) -> "MappingStage":
        """A stage for a live camera or session video: K from ``settings.intrinsics``, else an
        approximate pinhole from ``live_hfov_deg`` (scaled to the real frame size on the first frame)."""
        if settings.intrinsics:
            try:
                K, size = read_intrinsics(settings.intrinsics)
            except SequenceError as e:
                raise ConfigError(f"slam.intrinsics: {e}") from None
        else:
            w, h = 640, 480
            f = (w / 2) / np.tan(np.radians(settings.live_hfov_deg) / 2)
            K, size = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]), (w, h)
        return cls(K, settings, detector, size)

    @property
    def map(self) -> SlamMap | None:
        return self.slam.map if self.slam is not None else None

    # -- one frame ---------------------------------------------------------
    def process(self, frame: np.ndarray, t: float | None = None) -> FrameResult:
        """Track one BGR frame (time ``t``, default now); anchor detections on every N-th tracked frame."""
        t = time.monotonic() if t is None else t
        with self._lock:
            if self.slam is None:
                self.slam = slam_for(frame, self.K, self.cfg, self.size)
            img = fit_width(as_bgr(frame), self.slam.K, self.cfg.max_width)[0]
            res = self.slam.process(img, t)
            self.frames += 1
            if res.T_cw is not None:
                self._tracked += 1
                if self.detector is not None and (self._tracked - 1) % self.anchor_every == 0:
                    found = self.detector.detect(img, self.min_score)
                    self.detections += len(found)
                    self.anchor(found, t)
        return res

    def anchor(self, detections: Iterable[Labelled], t: float) -> list[Landmark]:
        """Anchor boxes of the last processed frame; the landmarks made or updated."""
        if self.slam is None:
            return []
        out = [anchor_detection(self.slam, d.label, d.box, t) for d in detections]
        return [lm for lm in out if lm is not None]

    def run(self, frames: Iterable[tuple[float, np.ndarray]], max_frames: int | None = None) -> "MappingStage":
        """Map a whole (timestamp, frame) sequence synchronously."""
        for i, (t, img) in enumerate(frames):
            if max_frames is not None and i >= max_frames:
                break
            self.process(img, t)
        return self

    def summary(self) -> dict[str, Any]:
        """Counts for reports: frames, keyframes, points, landmarks and the path length (map units)."""
        m = self.map
        if m is None:
            return {"frames": self.frames, "initialised": False}
        with m.lock:
            return {"frames": self.frames, "initialised": m.initialised, "keyframes": len(m.keyframes),
                    "map_points": len(m.points), "status_counts": m.status_counts(),
                    "detections": self.detections, "landmarks": sorted(m.landmarks),
                    "path_length_map": round(m.path_length(), 4)}

    # -- live ----------------------------------------------------------------
    def attach(self, ctx: ToolContext) -> "MappingStage":
        """Expose the map to the tools and follow the mode: live mapping runs only in ``mapping``."""
        ctx.map_query = self.query
        ctx.listeners.append(self.on_mode)
        self.on_mode(ctx.mode)
        return self

    def on_mode(self, mode: str) -> None:
        if mode == MAPPING_MODE:
            self.active.set()
        else:
            self.active.clear()

    def offer(self, t: float, frame: np.ndarray) -> None:
        """Hand a live frame to the worker (replaces one not yet taken); ignored unless mapping."""
        if self.active.is_set():
            self._slot.put(t, frame)

    def start(self) -> "MappingStage":
        self._thread = threading.Thread(target=self._work, name="mapping", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def _work(self) -> None:
        def handle(t: float, frame: np.ndarray) -> None:
            if not self.active.is_set():
                return
            try:
                self.process(frame, t)
            except Exception as e:  # noqa: BLE001 - one bad frame is skipped, counted in .frame_errors
                self.frame_errors += 1
                log_frame_error(log, "mapping", self.frame_errors, e)

        try:
            self._slot.serve(self._stop, handle)
        except Exception as e:  # noqa: BLE001 - reported through .error
            self.error = e
            log.warning("mapping stage stopped: %s", e)
