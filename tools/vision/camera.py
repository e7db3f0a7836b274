"""The camera stage: frames from a source (tools/vision/capture.py: a device, a stream URL, a video file or a still
image), analysed into the state.

A reader thread grabs frames into a one-slot buffer (a newer frame replaces
an unprocessed one, so there is never a backlog); a worker thread analyses
the newest frame at its own pace (objects + tracking, faces + emotion, hands
+ gestures) and publishes a ``Snapshot`` to the ``PerceptionState``.
``FrameProcessor.process_image`` does the same for one photo, synchronously.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from tools.common.devices import Reconnector
from tools.vision.detector import ObjectDetector, load_detector
from tools.vision.face_hands import as_bgr, load_image
from tools.vision.state import FrameAnalysis, PerceptionState, Snapshot, TrackTap, analysis_json, follower
from tools.vision.tracking import ObjectFollower, ObjectPipeline, TrackFrame
from tools.vision.who import FaceNamer

if TYPE_CHECKING:
    from tools.common.settings import DetectorSettings, ToolSettings

log = logging.getLogger(__name__)


class FrameAnalyser(Protocol):
    def analyse(self, frame: np.ndarray, t_ms: float | None = None) -> FrameAnalysis: ...


class FrameProcessor:
    """Runs the analysers on a frame and publishes the result; safe to call from several threads.

    ``listeners`` (callables taking the ``Snapshot``) run after each publish, e.g.
    ``GestureModeSwitch.observe`` so held gestures on the stream are reported.
    """

    def __init__(self, detector: ObjectDetector, detector_cfg: "DetectorSettings", analyser: FrameAnalyser | None,
                 state: PerceptionState | None = None) -> None:
        self.detector, self.detector_cfg, self.analyser = detector, detector_cfg, analyser
        self.pipeline = ObjectPipeline.from_settings(detector, detector_cfg)
        self.state = state or PerceptionState()
        self._lock = threading.Lock()
        self._frames = 0
        self._follow_gen = 0
        self._follow: tuple[ObjectFollower, TrackTap] | None = None
        self.listeners: list[Callable[[Snapshot], object]] = []
        self.namer: FaceNamer | None = None  # names enrolled faces (tools/vision/who.py)

    @classmethod
    def from_settings(cls, settings: "ToolSettings", video: bool, faces_and_hands: bool = True,
                      state: PerceptionState | None = None, namer: FaceNamer | None = None) -> "FrameProcessor":
        """Detector + tracker, and (unless turned off) the face/hand analyser with ``namer`` naming its faces
        (agent.identity.face_classifier.face_namer builds one over the enrolled profiles)."""
        analyser = None
        if faces_and_hands:
            from tools.vision.face_hands import FaceHandsAnalyser

            analyser = FaceHandsAnalyser(settings, video=video)
        processor = cls(load_detector(settings), settings.detector, analyser, state)
        if analyser is not None:
            processor.namer = namer
        return processor

    def _objects(self, frame: np.ndarray) -> TrackFrame:
        """Step the tracker, through the follower while one object is being followed."""
        gen, target = self.state.follow_request()
        if gen != self._follow_gen:
            self._follow_gen = gen
            self._follow = follower(self.pipeline.step, target) if target is not None else None
        if self._follow is None:
            return self.pipeline.step(frame)
        chase, tap = self._follow
        self.state.update_follow(gen, chase.step(frame))
        return tap.last

    def process(self, frame: np.ndarray, t: float | None = None, live: bool = True) -> Snapshot:
        """Analyse one BGR frame captured at monotonic time ``t`` (default: now) and publish it."""
        t = time.monotonic() if t is None else t
        bgr = as_bgr(frame)
        with self._lock:
            tracked = self._objects(bgr)
            extra = analysis_json(self.analyser.analyse(bgr, 1000 * t)) if self.analyser else {}
            if self.namer is not None and "faces" in extra:
                extra["faces"] = self.namer.name(bgr, extra["faces"], t)
            h, w = bgr.shape[:2]
            snap = Snapshot(t=t, width=w, height=h, faces=tuple(extra.get("faces", ())),
                            hands=tuple(extra.get("hands", ())), objects=tuple(tracked.objects), live=live,
                            frame_index=self._frames, action=extra.get("action"))
            self._frames += 1
        self.state.publish(snap)
        for fn in list(self.listeners):
            fn(snap)
        return snap

    def reset(self) -> None:
        """Forget tracks and any followed object (the next frame is unrelated to the last)."""
        with self._lock:
            self.pipeline = ObjectPipeline.from_settings(self.detector, self.detector_cfg)
            self._follow = None
            if self.namer is not None:
                self.namer.reset()
        self._follow_gen = self.state.request_follow(None)

    def process_image(self, image: np.ndarray | str | Path) -> Snapshot:
        """One photo (array or path) as an unrelated still: fresh tracks, detector run, never stale."""
        frame = load_image(image) if isinstance(image, (str, Path)) else image
        self.reset()
        return self.process(frame, live=False)


class FrameSource(Protocol):
    """Frames to analyse; ``fps`` paces reading (None: the device paces itself). ``reconnect`` is a live
    device's state and reopening (tools/vision/capture.py); None for files, stills and streamed tracks."""

    @property
    def reconnect(self) -> Reconnector | None: ...
    @property
    def fps(self) -> float | None: ...

    def read(self) -> np.ndarray | None: ...  # None at the end
    def close(self) -> None: ...


class TeeSource:
    """A :class:`FrameSource` that also offers every frame it reads to ``sinks(t, frame)`` (monotonic t):
    one camera reader, several consumers (mapping, the face gate)."""

    def __init__(self, source: FrameSource, *sinks: Callable[[float, np.ndarray], object]) -> None:
        self.source, self.sinks = source, sinks
        self.fps = source.fps
        self.reconnect = source.reconnect

    def read(self) -> np.ndarray | None:
        frame = self.source.read()
        if frame is not None:
            t = time.monotonic()
            for sink in self.sinks:
                sink(t, frame)
        return frame

    def close(self) -> None:
        self.source.close()


class RecentFrames:
    """The camera's last ``keep_s`` seconds, for readers beside the camera stage (the face gate).

    Kept at most ``fps`` frames a second, no wider than ``max_width`` (a 1080p camera would otherwise
    hold most of a gigabyte here).
    """

    def __init__(self, keep_s: float = 8.0, fps: float = 12.0, max_width: int = 960) -> None:
        self.keep_s, self.min_dt, self.max_width = keep_s, 1.0 / fps, max_width
        self._frames: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, t: float, frame: np.ndarray) -> None:
        with self._lock:
            if self._frames and t - self._frames[-1][0] < self.min_dt:
                return
        if frame.shape[1] > self.max_width:
            scale = self.max_width / frame.shape[1]
            frame = cv2.resize(frame, (self.max_width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        with self._lock:
            self._frames.append((t, frame))
            while self._frames and self._frames[0][0] < t - self.keep_s:
                self._frames.popleft()

    def newest(self) -> float | None:
        """Monotonic time of the newest frame kept (None: none yet)."""
        with self._lock:
            return self._frames[-1][0] if self._frames else None

    def window(self, window_s: float, n: int, now: float | None = None) -> list[np.ndarray]:
        """Up to ``n`` frames spread evenly over the ``window_s`` seconds before ``now`` (empty: nothing in view)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [f for t, f in self._frames if now - window_s <= t <= now]
        if len(recent) <= n:
            return recent
        return [recent[int(i)] for i in np.linspace(0, len(recent) - 1, n)]


class LatestFrame:
    """A one-slot buffer: ``put`` replaces an unprocessed frame (counted as dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[float, np.ndarray] | None = None
        self.dropped = 0
        self.closed = False

    def put(self, t: float, frame: np.ndarray) -> None:
        with self._cond:
            self.dropped += self._item is not None
            self._item = (t, frame)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def take(self, timeout: float) -> tuple[float, np.ndarray] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self.closed, timeout)
            item, self._item = self._item, None
            return item

    def serve(self, stop: threading.Event, handle: Callable[[float, np.ndarray], object]) -> None:
        """Hand each newest frame to ``handle(t, frame)`` until ``stop`` is set or the slot closes."""
        while not stop.is_set():
            item = self.take(timeout=0.5)
            if item is None:
                if self.closed:
                    return
                continue
            handle(*item)


def log_frame_error(logger: logging.Logger, stage: str, n: int, e: BaseException) -> None:
    """Log a per-frame failure: the first few with a traceback, then every 100th (a live feed must not flood)."""
    if n <= 3 or n % 100 == 0:
        logger.warning("%s stage: frame failed (%d so far): %s: %s", stage, n, type(e).__name__, e,
                       exc_info=e if n <= 3 else None)


class HoldFlag(Protocol):
    """Set by the session while it needs the CPU (a gate check, a reply): ``threading.Event`` fits."""

    def is_set(self) -> bool: ...


class CameraStage:
    """Reader + worker threads feeding a ``FrameProcessor`` from a ``FrameSource`` until stopped."""

    HELD_INTERVAL_S = 1.0  # while ``hold`` is set (a gate check, or the assistant thinks or talks): 1 frame/s

    def __init__(self, processor: FrameProcessor, source: FrameSource, max_fps: float | None = None) -> None:
        self.processor, self.source = processor, source
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        # Set by the session while the gate checks or a reply is thought and spoken: on two cores
        # every frame analysed then is CPU taken from them, so the stage slows down instead.
        self.hold: HoldFlag = threading.Event()
        self.stop_event = threading.Event()
        self.frames_read = self.frames_processed = 0
        self.frame_errors = 0  # frames the processor failed on (skipped; the stage keeps going)
        self.error: BaseException | None = None  # what stopped a thread (fatal)
        self._slot = LatestFrame()
        self._threads = [threading.Thread(target=self._read, name="camera-read", daemon=True),
                         threading.Thread(target=self._work, name="camera-work", daemon=True)]

    @property
    def state(self) -> PerceptionState:
        return self.processor.state

    @property
    def frames_dropped(self) -> int:
        return self._slot.dropped

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> "CameraStage":
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self._slot.close()
        if (reconnect := self.source.reconnect) is not None:  # a reader waiting to reopen gives up now
            reconnect.cancel()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)
        if self._threads[0].is_alive():  # the reader is stuck in a device read: releasing now could crash it
            log.warning("camera reader did not stop within %.0f s; leaving the device open", timeout)
            return
        self.source.close()

    def __enter__(self) -> "CameraStage":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read(self) -> None:
        t0 = time.monotonic()
        try:
            while not self.stop_event.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self._slot.put(time.monotonic(), frame)
                self.frames_read += 1
                if self.source.fps:  # files and stills play in real time
                    self.stop_event.wait(max(t0 + self.frames_read / self.source.fps - time.monotonic(), 0.0))
        except Exception as e:  # noqa: BLE001 - reported through .error
            self.error = e
            log.warning("camera reader stopped: %s", e)
        finally:
            self._slot.close()

    def _work(self) -> None:
        def handle(t: float, frame: np.ndarray) -> None:
            started = time.monotonic()
            try:
                self.processor.process(frame, t=t)
                self.frames_processed += 1
            except Exception as e:  # noqa: BLE001 - one bad frame is skipped, counted in .frame_errors
                self.frame_errors += 1
                log_frame_error(log, "camera", self.frame_errors, e)
            interval = self.HELD_INTERVAL_S if self.hold.is_set() else self.min_interval
            self.stop_event.wait(max(interval - (time.monotonic() - started), 0.0))

        try:
            self._slot.serve(self.stop_event, handle)
        except Exception as e:  # noqa: BLE001 - reported through .error
            self.error = e
            log.warning("camera worker stopped: %s", e)
