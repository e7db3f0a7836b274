"""Benchmark group ``objects``: detector and tracker cost, detect-every-N + track FPS.

All on real frames of ``scenes/vtest.avi`` resized to 640x480.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import cv2
import numpy as np

from agent.common.config import Settings
from agent.evals.stats import figure
from tools.vision.detector import load_detector
from tools.vision.images import read_video
from tools.vision.tracking import MultiObjectTracker, ObjectPipeline

SIZE = (640, 480)
N_FRAMES = 60


def video_frames(path: str, n: int, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """The first n frames of a video, resized."""
    _, frames = read_video(path, n)
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for _, f in frames]


def _ms(fn: Callable[..., object], *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return 1000 * (time.perf_counter() - t0)


def bench_objects(settings: Settings, repeat: int = 3) -> dict:
    cfg = settings.detector
    frames = video_frames(str(settings.testdata_dir / "scenes" / "vtest.avi"), N_FRAMES)
    detector = load_detector(settings)
    detector.detect(frames[0])  # warm-up
    det_ms = [_ms(detector.detect, f, cfg.low_score) for f in frames[: max(5, 4 * repeat)]]

    # tracker alone, fed the detections it would get on a detect-every-N schedule
    dets = [detector.detect(f, cfg.low_score) if i % cfg.detect_every == 0 else None
            for i, f in enumerate(frames)]
    trk_ms: list[float] = []
    for _ in range(repeat):
        tracker = MultiObjectTracker(cfg.score_threshold, cfg.match_iou, cfg.max_missed)
        trk_ms += [_ms(tracker.step, d) for d in dets]

    fps = []
    for _ in range(repeat):
        pipeline = ObjectPipeline.from_settings(detector, cfg)
        t0 = time.perf_counter()
        for f in frames:
            pipeline.step(f)
        fps.append(len(frames) / (time.perf_counter() - t0))
    size = f"{SIZE[0]}x{SIZE[1]}"
    return {
        "objects_detector_ms": figure(det_ms, "ms", frame=size),
        "objects_tracker_ms": figure(trk_ms, "ms", frame=size),
        "objects_detect_track_fps": figure(fps, "fps", frame=size, detect_every=cfg.detect_every,
                                           frames=len(frames)),
    }
