"""``main.py soak``: the session over looped recordings; CI's short version (slow)."""
from __future__ import annotations

import numpy as np
import pytest

from agent.evals.soak import LoopSource


def test_loop_source_repeats_whole_frames():
    src = LoopSource(np.arange(1000, dtype=np.float32) / 1000, cycles=3, frame_ms=30)
    frames = list(src)
    assert len(frames) == len(src) == 3 * 3 and all(f.shape == (480,) for f in frames)
    assert np.array_equal(frames[0], frames[3])  # each cycle starts on a frame boundary


@pytest.mark.slow
def test_two_minute_soak(settings):
    from agent.evals.soak import soak

    out = soak(settings, minutes=2)
    assert out["answered"] >= out["commands"] >= 4 and not out["errors"], out
    assert out["rss_mb"]["growth_after_warm_up"] < 0.05 and out["threads"]["end"] <= out["threads"]["after_warm_up"]
    assert out["ok"]


@pytest.mark.slow
def test_two_minute_soak_with_the_camera_stage(settings):
    """The same soak with the camera stage on the looped Hamilton clip (slow: on two cores the camera's
    analysers share the CPU with ASR, the LLM and TTS)."""
    from agent.evals.soak import soak

    out = soak(settings, minutes=2, camera=True)
    assert out["answered"] >= out["commands"] >= 4 and not out["errors"], out
    cam = out["camera"]
    assert cam["ok"] and cam["frames_processed"] > 50 and cam["fps"] > 0.5 and cam["frame_errors"] == 0, cam
    assert out["rss_mb"]["growth_after_warm_up"] < 0.05 and out["threads"]["end"] <= out["threads"]["after_warm_up"]
    assert out["ok"]
