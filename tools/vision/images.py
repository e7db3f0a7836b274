"""Image arrays and files as OpenCV BGR uint8: the one ``as_bgr`` and the one ``load_image``.

Everything that reads a photo (``perceive``, the camera stage, the face check)
goes through ``load_image``; everything that takes a frame from elsewhere goes
through ``as_bgr``. Bad input is an ``MMChatError`` with code ``image-invalid``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from tools.common.errors import ErrorCode, MMChatError


def _bad(message: str) -> MMChatError:
    return MMChatError(message, ErrorCode.IMAGE_INVALID)


def as_bgr(frame: Any) -> np.ndarray:
    """Accept BGR, BGRA or grey arrays (uint8, or numbers scaled to 0..255 / 0..1); else ``image-invalid``."""
    if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.ndim not in (2, 3):
        raise _bad("not an image array")
    if frame.dtype != np.uint8:
        if not np.issubdtype(frame.dtype, np.number) or not np.isfinite(frame).all():
            raise _bad(f"unsupported image dtype {frame.dtype}")
        frame = np.clip(frame * (255.0 if frame.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[2] != 3:
        raise _bad(f"unsupported channel count {frame.shape[2]}")
    return np.ascontiguousarray(frame)


def load_image(path: str | Path) -> np.ndarray:
    """An image file as BGR uint8; a missing, empty or undecodable file raises ``image-invalid``.

    16-bit (and float) images are scaled by their maximum to 0..255.
    """
    p = _check_file(path)
    img = cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise _bad(f"{path}: not a readable image")
    if img.dtype != np.uint8:  # 16-bit PNG/TIFF
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    return as_bgr(img)


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise _bad(f"{path}: file not found")
    if p.stat().st_size == 0:
        raise _bad(f"{path}: empty file")
    return p


def open_video(path: str | Path, default_fps: float = 25.0) -> tuple[cv2.VideoCapture, float, np.ndarray]:
    """The one video-file opener: (capture, fps, first BGR frame), the capture just past its first frame.

    A missing, empty or undecodable file is an ``image-invalid`` error before any work starts;
    ``default_fps`` stands in for a missing rate."""
    p = _check_file(path)
    cap = cv2.VideoCapture(str(p))
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok or first is None:
        cap.release()
        raise _bad(f"{path}: not a readable video (no frames decoded)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    return cap, (fps if 0 < fps < 1000 else default_fps), first


def read_video(path: str | Path, max_frames: int | None = None,
               default_fps: float = 25.0) -> tuple[float, Iterator[tuple[float, np.ndarray]]]:
    """The one video-file reader: (fps, iterator of (t seconds, BGR frame)), opened by ``open_video``."""
    cap, fps, first = open_video(path, default_fps)

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        frame: np.ndarray | None = first
        i = 0
        try:
            while frame is not None and (max_frames is None or i < max_frames):
                yield i / fps, frame
                ok, frame = cap.read()
                frame, i = (frame if ok else None), i + 1
        finally:
            cap.release()

    return fps, frames()
