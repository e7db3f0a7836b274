"""Benchmark group ``slam``: monocular SLAM cost at 640x480 on a rendered sequence.

Figures: tracking ms per frame (frames without a new keyframe), keyframe insertion ms
(triangulation + local BA), local BA ms alone, and end-to-end FPS over the whole sequence.
"""
from __future__ import annotations

from agent.common.config import Settings
from agent.evals.stats import figure
from tools.slam.run import run_sequence
from tools.slam.synth import default_K, frames

N_FRAMES = 60


def bench_slam(settings: Settings, repeat: int = 3) -> dict:
    seq = [(t, img) for t, img, _ in frames(N_FRAMES, "smooth")]  # rendered once, outside the clock
    track, kf, ba, fps = [], [], [], []
    for _ in range(max(1, repeat)):
        run = run_sequence(seq, default_K(), settings.slam)
        for r in run.results:
            if r.keyframe:
                kf.append(r.timings.get("keyframe"))
                ba.append(r.timings.get("ba"))
            else:
                track.append(r.timings.get("track"))
        fps.append(len(run.results) / run.seconds)
    return {"slam_track_ms": figure(track, "ms", size="640x480"),
            "slam_track_fps": figure([1000.0 / t for t in track if t], "fps", size="640x480"),
            "slam_keyframe_ms": figure(kf, "ms"),
            "slam_local_ba_ms": figure(ba, "ms"),
            "slam_end_to_end_fps": figure(fps, "fps", frames=N_FRAMES)}
