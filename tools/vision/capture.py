"""The frame sources: a device index, a stream URL, a video file or a still image.

The camera stage reads them in order (``open_source``); the face gate reads the same sources by time
(agent/identity/gate.py: a still's one image, a ``VideoFile``'s stretch by video time, a live camera's
recent frames through ``tools.vision.camera.TeeSource``).

A live device or URL whose reads keep failing is released and reopened with back-off
(``tools.common.devices``) instead of ending the stream: ``CaptureSource.reconnect`` tells its
listeners (the session) when the camera goes down and when it is back. Files end at EOF (or loop).
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from tools.common.devices import Backoff, Reconnector
from tools.common.errors import ErrorCode, MMChatError
from tools.common.settings import DeviceSettings
from tools.vision.images import load_image, open_video

STILL_FPS = 5.0  # how often a repeated still image is offered to the worker
STREAM_TIMEOUT_MS = 5000  # opening / reading a camera stream URL
DEVICES = DeviceSettings()  # the defaults: a live camera's reads may fail 2 s (retried 0.1 s apart), then lost
CAMERA = "camera"  # the device's name in its DeviceStatus


class StillSource:
    """One image offered again and again, as if a camera looked at a still scene."""

    reconnect = None

    def __init__(self, image: np.ndarray, fps: float = STILL_FPS) -> None:
        self.image, self.fps = image, fps

    def read(self) -> np.ndarray | None:
        return self.image

    def close(self) -> None:
        pass


def open_capture(device: int | str) -> cv2.VideoCapture | None:
    """A device index or stream URL opened (URLs with open/read time-outs) and one frame grabbed; None
    when that fails. OpenCV's own warnings are silenced: the caller reports the failure in one line."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:  # a stream that stalls must not hang the session
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    STREAM_TIMEOUT_MS]
        cap = cv2.VideoCapture(device, cv2.CAP_ANY, timeouts) if isinstance(device, str) else cv2.VideoCapture(device)
        ok = cap.isOpened() and cap.grab()
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not ok:
        cap.release()
        return None
    return cap


class CaptureSource:
    """A camera device, stream URL or video file through ``cv2.VideoCapture``.

    Files play at ``fps`` and can loop. A live source (``device`` given) rides out
    ``hiccup_s`` of failed reads, then is released and reopened with back-off until it
    is back (``reconnect`` reports down / reconnecting / up) or ``reconnect.cancel()``
    ends the wait (``read`` returns None: the stage is stopping).
    """

    def __init__(self, cap: cv2.VideoCapture, fps: float | None, loop: bool = False,
                 device: int | str | None = None, backoff: Backoff | None = None,
                 hiccup_s: float = DEVICES.camera_hiccup_s, frames: tuple[int, int | None] = (0, None)) -> None:
        """``frames``: the part of a file played (first, end; end None: to EOF), from its first frame."""
        self.cap, self.fps, self.loop, self.device, self.hiccup_s = cap, fps, loop, device, hiccup_s
        self.reconnect = Reconnector(CAMERA, backoff) if device is not None else None
        self.first, self.end = frames
        self.pos = 0
        if self.first:
            self._seek(self.first)

    def _seek(self, index: int) -> None:
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        self.pos = index

    def _next(self) -> np.ndarray | None:
        ok, frame = (False, None) if self.end is not None and self.pos >= self.end else self.cap.read()
        self.pos += ok
        return frame if ok else None

    def _read_once(self) -> np.ndarray | None:
        frame = self._next()
        if frame is None and self.loop:
            self._seek(self.first)
            frame = self._next()
        return frame

    def read(self) -> np.ndarray | None:
        frame = self._read_once()
        if frame is not None or self.reconnect is None:
            return frame  # a file: None is its end
        deadline = time.monotonic() + self.hiccup_s
        while time.monotonic() < deadline and not self.reconnect.cancelled:
            time.sleep(0.1)
            frame = self._read_once()
            if frame is not None:
                return frame
        return self._recover()

    def _recover(self) -> np.ndarray | None:
        """Release the dead capture and reopen it with back-off; the first frame after, or None (cancelled)."""
        assert self.reconnect is not None and self.device is not None
        self.cap.release()
        self.reconnect.lost(f"no frames from {self.device} for {self.hiccup_s:.0f} s")
        device = self.device
        while True:
            cap = self.reconnect.reopen(lambda: open_capture(device))
            if cap is None:
                return None
            self.cap = cap
            ok, frame = cap.retrieve()  # the frame open_capture grabbed
            if ok:
                return frame
            cap.release()
            self.reconnect.lost(f"{device} opened but its first frame did not decode")

    def close(self) -> None:
        self.cap.release()


def open_source(spec: int | str | Path, loop: bool = False, frames: tuple[int, int | None] = (0, None),
                devices: DeviceSettings | None = None) -> CaptureSource | StillSource:
    """A device index (0, "0"), a stream URL (rtsp://, http://: a robot's or drone's camera), an image
    file (repeated) or a video file (``frames``: the part played); typed errors when unusable. A live
    device rides out hiccups and reopens as ``devices`` says (its defaults when None)."""
    if isinstance(spec, int) or str(spec).isdigit() or "://" in str(spec):
        device = int(str(spec)) if str(spec).isdigit() else str(spec)
        cap = open_capture(device)
        if cap is None:
            raise MMChatError(f"no camera at {'device index ' if isinstance(device, int) else ''}{device}",
                              ErrorCode.DEVICE)
        cfg = devices or DEVICES
        return CaptureSource(cap, None, device=device, backoff=Backoff.of(cfg), hiccup_s=cfg.camera_hiccup_s)
    path = Path(spec)
    if not path.is_file() or path.stat().st_size == 0:
        raise MMChatError(f"{path}: file not found or empty", ErrorCode.IMAGE_INVALID)
    if cv2.haveImageReader(str(path)):
        return StillSource(load_image(path))
    return VideoFile(path).play(loop, frames)


class VideoFile:
    """A video file on its own clock (time 0: its first frame), checked readable when made.

    ``play`` gives the camera stage a ``CaptureSource`` reading it in order; ``window`` reads any
    stretch on demand, for a reader that follows stream time instead of playing the file (the face
    gate beside a recording whose stream time is the video's time).
    """

    reconnect = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        cap, self.fps, _ = open_video(self.path)  # IMAGE_INVALID now if unreadable
        self.count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        self.duration = self.count / self.fps

    def play(self, loop: bool = False, frames: tuple[int, int | None] = (0, None)) -> CaptureSource:
        """The file read in order at its rate (``frames``: the part played; ``loop``: again from its start)."""
        cap, _, _ = open_video(self.path)
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return CaptureSource(cap, self.fps, loop, frames=frames)

    def window(self, start_s: float, window_s: float, n: int) -> list[tuple[float, np.ndarray]]:
        """``n`` (time_s, BGR frame) pairs evenly spaced over [start_s, start_s + window_s], clipped to the
        video; empty when none decodes."""
        if self.count <= 0:
            raise MMChatError(f"{self.path.name}: no frame count, the video cannot be read by time",
                              ErrorCode.IMAGE_INVALID)
        first = min(int(start_s * self.fps), self.count - 1)
        last = min(int((start_s + window_s) * self.fps), self.count - 1)
        cap = cv2.VideoCapture(str(self.path))
        out: list[tuple[float, np.ndarray]] = []
        try:
            for idx in sorted({int(round(i)) for i in np.linspace(first, last, max(1, n))}):
                cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                ok, frame = cap.read()
                if ok:
                    out.append((idx / self.fps, frame))
        finally:
            cap.release()
        return out
