"""Benchmark group "vision_face": face mesh, hands, emotion and the combined analyser.

Frames come from testdata/faces/probe/short_hamilton_clip.mp4, letterboxed to
640x480. Per-stage figures are milliseconds per frame; ``face_hands_fps`` is
frames per second of the whole analyser in video mode (emotion every
``vision.emotion_every`` frames; age/gender once per new face track).
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from agent.common.config import Settings
from agent.evals.stats import figure
from tools.common.errors import ErrorCode, MMChatError

CLIP = "faces/probe/short_hamilton_clip.mp4"
SIZE = (640, 480)


def clip_frames(settings: Settings, limit: int = 90) -> list[np.ndarray]:
    """Up to ``limit`` frames of the clip, letterboxed to 640x480 BGR."""
    cap = cv2.VideoCapture(str(settings.testdata_dir / CLIP))
    out: list[np.ndarray] = []
    while len(out) < limit:
        ok, img = cap.read()
        if not ok:
            break
        h, w = img.shape[:2]
        s = min(SIZE[0] / w, SIZE[1] / h)
        img = cv2.resize(img, (round(w * s), round(h * s)))
        dy, dx = SIZE[1] - img.shape[0], SIZE[0] - img.shape[1]
        out.append(cv2.copyMakeBorder(img, dy // 2, dy - dy // 2, dx // 2, dx - dx // 2, cv2.BORDER_CONSTANT))
    cap.release()
    if not out:
        raise MMChatError(f"{CLIP}: no frames", ErrorCode.BAD_INPUT)
    return out


def bench_face_hands(settings: Settings, repeat: int = 3) -> dict:
    from tools.vision.face_hands import FaceHandsAnalyser

    frames = clip_frames(settings)
    stages: dict[str, list[float]] = {"face_mesh": [], "hands": [], "emotion": [], "age_gender": []}
    fps: list[float] = []
    faces = 0
    for _ in range(max(repeat, 1)):
        analyser = FaceHandsAnalyser(settings, video=True)
        analyser.analyse(frames[0])  # warm-up
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            r = analyser.analyse(f, t_ms=i * 33.3)
            faces += len(r.faces)
            for k, v in r.timings_ms.items():
                stages[k].append(v)
        fps.append(len(frames) / (time.perf_counter() - t0))
        analyser.close()
    size = f"{SIZE[0]}x{SIZE[1]}"
    out = {f"vision_{k}_ms": figure(v, unit="ms", frame=size) for k, v in stages.items()}
    out["vision_face_hands_fps"] = figure(fps, unit="fps", frame=size, frames=len(frames),
                                          emotion_every=settings.vision.emotion_every,
                                          faces_per_frame=round(faces / (len(frames) * max(repeat, 1)), 2))
    return out
