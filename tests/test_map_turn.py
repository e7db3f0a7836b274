"""The SLAM map connected to the assistant: mapping stage, query_map answers and turns through the real LLM."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from agent.common.config import load_settings
from agent.session.assistant import Assistant
from agent.session.mapping import MapHook
from tools.base import ToolContext
from tools.slam.map import camera_center
from tools.slam.stage import MappingStage
from tools.slam.synth import find_photos, write_sequence
from tools.vision.detector import Detection

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = load_settings(ROOT / "config.yaml")
pytestmark = pytest.mark.skipif(not find_photos(), reason="no photos for textures (testdata/scenes or opencv-doc)")


@pytest.fixture(scope="module")
def seq(tmp_path_factory) -> Path:
    return write_sequence(tmp_path_factory.mktemp("map_turn") / "seq", n=60)


@pytest.fixture(scope="module")
def stage(seq) -> MappingStage:
    """The sequence mapped through the CLI hook (detector on every 5th tracked frame), plus a chosen 'cup'."""
    ctx = ToolContext()
    with MapHook(SETTINGS, ctx, frames=str(seq), intrinsics=str(seq / "K.yaml")) as st:
        assert ctx.map_query is st.query
    uv, _, _ = st.slam.frame_points()
    x2 = float(np.percentile(uv[:, 0], 10)) / 0.9  # the leftmost tenth of the last frame's map points
    assert st.anchor([Detection("cup", 1.0, (0, 0, x2, 480))], st.map.trajectory[-1].timestamp)
    return st


@pytest.fixture(scope="module")
def turn():
    """One LLM for the module; each test points the shared context at its map."""
    ctx = ToolContext()
    controller = Assistant(SETTINGS, tool_context=ctx).controller

    def ask(text: str, map_query) -> tuple[dict, object]:
        ctx.map_query = map_query
        controller.history.clear()
        return controller.respond(text).as_json(), map_query

    return ask


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]


def path_length(stage: MappingStage) -> float:
    c = np.array([camera_center(e.T_cw) for e in stage.map.trajectory if e.T_cw is not None])
    return float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum())


def test_stage_maps_the_sequence(stage):
    s = stage.summary()
    assert s["initialised"] and s["status_counts"]["lost"] == 0 and s["keyframes"] >= 5
    assert "cup" in s["landmarks"] and s["frames"] == 60


def test_query_distance_is_the_trajectory_length(stage):
    r = stage.query.answer("how far have we moved")
    assert r.ok and r.data["distance"] == pytest.approx(path_length(stage), abs=1e-3)
    assert f"{path_length(stage):.2f}" in r.summary


def test_turn_states_the_distance_from_the_map(stage, turn):
    out, q = turn("How far have we moved since we started?", stage.query)
    assert [c["name"] for c in out["tool_calls"]] == ["query_map"], out
    d = q.answer(out["tool_calls"][0]["args"]["question"]).data["distance"]
    assert any(abs(n - d) <= 0.01 for n in numbers(out["reply"])), (d, out["reply"])


def test_turn_gives_the_cup_direction_from_the_map(stage, turn):
    want = stage.query.answer("Where is the cup?")
    assert want.ok and want.data["direction"] in want.summary
    out, _ = turn("Where is the cup?", stage.query)
    assert [c["name"] for c in out["tool_calls"]] == ["query_map"], out
    reply = set(re.findall(r"[a-z]+", out["reply"].lower()))
    said = {"left", "right", "ahead", "behind"} & set(want.data["direction"].split())
    assert said and said <= reply and not ({"left", "right"} - said) & reply, (want.summary, out["reply"])


def test_no_map_is_a_plain_statement(turn):
    empty = MappingStage(np.eye(3)).query  # a mapping stage that has seen no frames
    out, _ = turn("How far have we moved since we started?", empty)
    assert [c["name"] for c in out["tool_calls"]] == ["query_map"]
    assert out["reply"] == empty.answer("how far").summary and "no map" in out["reply"].lower()
