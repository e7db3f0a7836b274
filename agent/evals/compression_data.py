"""Real inputs for the compression table and the int8 calibration, kept apart.

Calibration (scripts/quantise_models.py) sees street frames 5, 15, ... 235 of
``scenes/vtest.avi`` and the faces of ``faces/enroll``; the table's quality figures use
frames 300, 320, ... of the same video, the two scene photos, and the faces of
``faces/probe`` and the Hamilton clip, so no evaluated frame was calibrated on.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tools.vision.images import load_image, read_video

CALIB_FRAMES = range(5, 240, 10)
EVAL_FRAMES = range(300, 780, 20)
FACE_PAD = 0.3  # vision.emotion_crop_pad


def street_frames(testdata: Path, indices: range) -> list[np.ndarray]:
    """Frames of vtest.avi at these indices (BGR, 768x576)."""
    _, frames = read_video(str(testdata / "scenes" / "vtest.avi"), indices.stop)
    wanted = set(indices)
    return [f for i, (_, f) in enumerate(frames) if i in wanted]


def scene_images(testdata: Path, quick: bool = False) -> list[tuple[str, np.ndarray]]:
    """(name, BGR) for the detector's quality figures: the two photos and unseen street frames."""
    photos = [(p.name, load_image(p)) for p in sorted((testdata / "scenes").glob("*.jpg"))]
    idx = EVAL_FRAMES[::4] if quick else EVAL_FRAMES
    return photos + [(f"vtest#{i}", f) for i, f in zip(idx, street_frames(testdata, idx))]


def _face_sources(testdata: Path, split: str) -> list[tuple[str, np.ndarray]]:
    if split == "calibration":
        return [(p.name, load_image(p)) for p in sorted((testdata / "faces" / "enroll").glob("*/*.jpg"))]
    out = [(p.name, load_image(p)) for p in sorted((testdata / "faces" / "probe").glob("*.jpg"))]
    _, frames = read_video(str(testdata / "faces" / "probe" / "short_hamilton_clip.mp4"), 300)
    out += [(f"hamilton#{i}", f) for i, (_, f) in enumerate(frames) if i % 15 == 0]
    return out


def face_crops(testdata: Path, split: str) -> list[tuple[str, np.ndarray]]:
    """(id, 64x64 grey crop) of every face MediaPipe finds in the split ("calibration" or "eval"),
    cropped as the camera stage crops them for the FER model."""
    from tools.vision.emotion import crop_face
    from tools.vision.faces import FaceFinder

    finder = FaceFinder(max_faces=4, min_confidence=0.5)
    crops = []
    try:
        for name, img in _face_sources(testdata, split):
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            for k, (box, _) in enumerate(finder.detect(np.ascontiguousarray(img[:, :, ::-1]))):
                crops.append((f"{name}/{k}", crop_face(gray, box, FACE_PAD)))
    finally:
        finder.close()
    return crops

