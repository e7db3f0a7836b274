"""The perception tools on real images: PerceptionService, the LangChain tools, the camera stage and the LLM."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import pytest

from agent.common.config import load_settings
from agent.session.perception import build_frame_processor
from tools import ToolContext, build_tools
from tools.common.errors import ErrorCode, MMChatError
from tools.vision.camera import CameraStage, FrameProcessor
from tools.vision.capture import StillSource, open_source
from tools.vision.detector import COCO_LABELS
from tools.vision.emotion import EMOTIONS
from tools.vision.scene import plural
from tools.vision.state import PerceptionService, Snapshot

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = load_settings(ROOT / "config.yaml")
TD = SETTINGS.testdata_dir
MESSI, FRUITS = TD / "scenes" / "messi5.jpg", TD / "scenes" / "fruits.jpg"
OBAMA, TWO_PEOPLE = TD / "faces" / "enroll" / "obama" / "obama.jpg", TD / "faces" / "probe" / "two_people.jpg"
pytestmark = pytest.mark.skipif(not MESSI.is_file(), reason="../shared/testdata not present")


@pytest.fixture(scope="module")
def processor() -> FrameProcessor:
    return build_frame_processor(SETTINGS, video=False)


@pytest.fixture
def service(processor) -> PerceptionService:
    return PerceptionService(processor.state)


def tools_for(service: PerceptionService) -> dict:
    return {t.name: t for t in build_tools(ToolContext(perception=service))}


def mentioned(summary: str) -> set[str]:
    """COCO labels named in a summary (in singular or plural form)."""
    text = summary.lower()
    return {lab for lab in COCO_LABELS if lab in text or plural(lab, 2).split(" ", 1)[1].lower() in text}


def test_scene_on_messi_names_only_detected_things(processor, service):
    snap = processor.process_image(MESSI)
    r = service.scene()
    assert r.ok and {"person", "sports ball"} <= mentioned(r.summary)
    assert mentioned(r.summary) <= {o.label for o in snap.objects}
    assert all(o["position"] in ("left", "centre", "right") and o["distance"] in ("near", "middle", "far")
               for o in r.data["objects"])
    assert "people" in r.summary and "sports ball" in r.summary


def test_scene_on_fruits_has_no_people(processor, service):
    snap = processor.process_image(FRUITS)
    r = service.scene()
    assert r.ok and "person" not in mentioned(r.summary) and not snap.faces
    assert mentioned(r.summary) == {o.label for o in snap.objects} != set()


def test_emotion_on_a_face_and_without_one(processor, service):
    snap = processor.process_image(OBAMA)
    r = service.emotion()
    assert r.ok and r.data["emotion"] in EMOTIONS and r.data["emotion"] in r.summary
    x1, y1, x2, y2 = r.data["box"]  # the same [x1, y1, x2, y2] pixel format as object boxes
    assert 0 <= x1 < x2 <= snap.width and 0 <= y1 < y2 <= snap.height
    assert abs(sum(r.data["scores"].values()) - 1) < 1e-2
    assert service.user_emotion() == r.data["emotion"]
    processor.process_image(FRUITS)
    r = service.emotion()
    assert not r.ok and r.summary == "I can't see your face right now." and service.user_emotion() is None


def test_emotion_picks_the_largest_of_two_faces(processor, service):
    snap = processor.process_image(TWO_PEOPLE)
    r = service.emotion()
    assert len(snap.faces) == 2 and r.ok and r.data["faces"] == 2
    assert r.data["box"] == max((f["box"] for f in snap.faces), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def test_track_ball_on_messi(processor, service):
    snap = processor.process_image(MESSI)
    r = service.track("ball")
    balls = {o.track_id for o in snap.objects if o.label == "sports ball"}
    assert r.ok and r.data["track_id"] in balls and r.data["matched_label"] == "sports ball"
    assert processor.state.follow_request()[1].track_id == r.data["track_id"]
    missing = service.track("cup")
    assert not missing.ok and missing.summary.startswith("I can't see a cup")
    assert not service.track("unicorn").ok


def test_langchain_tools_return_the_service_results(processor, service):
    processor.process_image(MESSI)
    tools = tools_for(service)
    scene = json.loads(tools["describe_scene"].invoke({}))
    assert scene["ok"] and scene["summary"] == service.scene().summary
    tracked = json.loads(tools["track_object"].invoke({"label": "ball"}))
    assert tracked["ok"] and isinstance(tracked["data"]["track_id"], int)
    processor.process_image(OBAMA)
    emotion = json.loads(tools["read_emotion"].invoke({}))
    assert emotion["ok"] and emotion["data"]["emotion"] in EMOTIONS
    processor.process_image(FRUITS)
    assert not json.loads(tools["read_emotion"].invoke({}))["ok"]
    assert "not available" in json.loads(build_tools(ToolContext())[0].invoke({}))["summary"]


def test_stale_and_missing_frames_are_reported():
    service = PerceptionService(max_age_s=2.0)
    assert not service.scene().ok and "picture yet" in service.scene().summary
    service.state.publish(Snapshot(t=time.monotonic() - 5, width=640, height=480))
    for r in (service.scene(), service.emotion(), service.track("cup")):
        assert not r.ok and r.data["status"] == "stale" and "old" in r.summary
    service.state.publish(Snapshot(t=time.monotonic() - 5, width=640, height=480, live=False))  # a still
    assert service.scene().ok


def test_camera_stage_keeps_only_the_newest_frame(processor):
    """A still repeated at 50 fps outpaces the analysers: frames are dropped, none queue up."""
    img = cv2.imread(str(MESSI))
    with CameraStage(processor, StillSource(img, fps=50.0)) as stage:
        assert stage.state.wait(10)
        time.sleep(1.0)
    assert not stage.running and stage.frames_processed >= 1 and stage.error is None
    assert stage.frames_dropped > 0  # at most one frame waits: the rest were processed or replaced
    assert stage.frames_read - stage.frames_processed - stage.frames_dropped in (0, 1)
    snap = stage.state.latest()
    assert snap.live and snap.age() < 2 and {"person", "sports ball"} <= {o.label for o in snap.objects}


def test_video_stage_and_follow(processor, service):
    processor.reset()
    with CameraStage(processor, open_source(TD / "scenes" / "vtest.avi"), max_fps=10) as stage:
        assert stage.state.wait(10)
        time.sleep(0.5)
        r = service.track("person")
        assert r.ok
        time.sleep(1.0)
        follow = stage.state.follow_request()[1]
        assert follow.track_id == r.data["track_id"] and follow.status in ("tracking", "lost")
        assert service.scene().ok and service.scene().data["live"]


def test_missing_camera_and_bad_files_are_typed_errors(tmp_path):
    with pytest.raises(MMChatError) as e:
        open_source(97)
    assert e.value.code == ErrorCode.DEVICE
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video" * 10)
    for path in (bad, tmp_path / "missing.jpg"):
        with pytest.raises(MMChatError) as e:
            open_source(path)
        assert e.value.code == ErrorCode.IMAGE_INVALID


@pytest.fixture(scope="module")
def assistant():
    from agent.session.assistant import Assistant

    ctx = ToolContext()
    a = Assistant(SETTINGS, tool_context=ctx)
    try:
        _ = a.controller  # ~15 s: load once
    except MMChatError as e:
        pytest.skip(str(e))
    return a


def test_llm_describes_messi(assistant, processor):
    processor.process_image(MESSI)
    assistant.tool_context.perception = PerceptionService(processor.state)
    assistant.controller.history.clear()
    result = assistant.controller.respond("What do you see?")
    print("REPLY:", result.reply)
    assert [c.name for c in result.tool_calls] == ["describe_scene"]
    assert any(w in result.reply.lower() for w in ("ball", "person", "people"))
