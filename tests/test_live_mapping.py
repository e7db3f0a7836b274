"""SLAM as a live stage beside perception: maps only in mapping mode, answers query_map from the map."""
from __future__ import annotations

import time

import cv2
import pytest

from agent.session.perception import PerceptionHook
from tools import ToolContext
from tools.slam import synth


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A rendered camera move (real photos on planes) written as a video file."""
    path = tmp_path_factory.mktemp("live") / "walk.avi"
    writer = None
    for _, img, _ in synth.frames(n=70):
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, img.shape[1::-1])
        writer.write(img)
    writer.release()
    return path


def _settings(settings, tmp_path):
    K = tmp_path / "K.yaml"
    synth.write_intrinsics(K, synth.default_K(), (synth.WIDTH, synth.HEIGHT))
    return settings.model_copy(update={"slam": settings.slam.model_copy(update={"intrinsics": str(K)})})


def test_maps_in_mapping_mode_and_answers(settings, video, tmp_path):
    ctx = ToolContext(mode="mapping")
    with PerceptionHook(_settings(settings, tmp_path), ctx, video=str(video), loop=False, mapping=True) as seen:
        assert seen is not None and ctx.map_query is not None
        deadline = time.monotonic() + 90
        stage = ctx.map_query
        while time.monotonic() < deadline:
            answer = stage.answer("How big is the map?")
            if answer.ok and answer.data.get("keyframes", 0) >= 3:
                break
            time.sleep(0.5)
        size = stage.answer("How big is the map?")
        moved = stage.answer("How far have we moved?")
    print(size.summary, "|", moved.summary)
    assert size.ok and size.data["keyframes"] >= 3 and size.data["map_points"] > 100
    assert moved.ok and moved.data["distance"] > 0
    assert ctx.map_query is None  # restored when the session's camera stops


def test_no_mapping_outside_mapping_mode(settings, video, tmp_path):
    ctx = ToolContext(mode="conversation")
    with PerceptionHook(_settings(settings, tmp_path), ctx, video=str(video), loop=False, mapping=True):
        time.sleep(3.0)
        answer = ctx.map_query.answer("How far have we moved?")
    assert not answer.ok and "no map" in answer.summary.lower()
