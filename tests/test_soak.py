"""``main.py soak``: the session over a looped recorded conversation; CI runs the 2-minute version."""
from __future__ import annotations

import pytest


def test_two_minute_soak(settings):
    """The default test run's soak: every command answered to its end, RSS flat, no thread leak."""
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
