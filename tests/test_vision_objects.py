"""Objects and tracking on real data: NanoDet ONNX, the Kalman/IoU tracker, describe_scene, perceive."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.app.cli import main
from agent.common.config import load_settings
from agent.evals.bench_vision_objects import video_frames
from tools.common.errors import ModelMissingError
from tools.vision.detector import COCO_LABELS, Detection, load_detector, match_label
from tools.vision.scene import describe_scene
from tools.vision.tracking import MultiObjectTracker, ObjectPipeline, track_object

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def settings():
    return load_settings(ROOT / "config.yaml")


@pytest.fixture(scope="module")
def detector(settings):
    try:
        return load_detector(settings)
    except ModelMissingError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def scenes(settings) -> Path:
    return settings.testdata_dir / "scenes"


@pytest.fixture(scope="module")
def vtest(scenes) -> list[np.ndarray]:
    return video_frames(str(scenes / "vtest.avi"), 60)


def labels_in(image: Path, detector) -> set[str]:
    return {d.label for d in detector.detect(cv2.imread(str(image)))}


def test_messi_person_and_ball(detector, scenes):
    img = cv2.imread(str(scenes / "messi5.jpg"))
    dets = detector.detect(img)
    assert {"person", "sports ball"} <= {d.label for d in dets}
    best = max((d for d in dets if d.label == "person"), key=lambda d: d.score)
    h, w = img.shape[:2]
    assert (best.box[2] - best.box[0]) * (best.box[3] - best.box[1]) > 0.3 * w * h  # the player fills the frame
    assert all(0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h for d in dets)


def test_fruits(detector, scenes):
    assert labels_in(scenes / "fruits.jpg", detector) & {"orange", "apple"}


def test_grey_and_odd_frames_do_not_crash(detector):
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    detector.detect(np.full((100, 60), 200, np.uint8))  # single channel
    detector.detect(np.zeros((50, 80, 4), np.uint8))  # BGRA


@pytest.fixture(scope="module")
def vtest_run(detector, settings, vtest):
    pipeline = ObjectPipeline.from_settings(detector, settings.detector)
    t0 = time.perf_counter()
    steps = [pipeline.step(f) for f in vtest]
    return steps, len(vtest) / (time.perf_counter() - t0)


def test_vtest_people_per_frame(vtest_run):
    steps, _ = vtest_run
    people = [sum(o.label == "person" for o in s.objects) for s in steps]
    assert all(p <= 20 for p in people)
    assert sum(p >= 3 for p in people) >= 0.8 * len(people), people


def test_vtest_tracks_keep_their_ids(vtest_run):
    steps, _ = vtest_run
    ratios = []
    for a, b in zip(steps, steps[1:]):
        ids_a = {o.track_id for o in a.objects if o.label == "person"}
        ids_b = {o.track_id for o in b.objects if o.label == "person"}
        if ids_a:
            ratios.append(len(ids_a & ids_b) / len(ids_a))
    assert np.mean(ratios) >= 0.85, ratios


def test_detect_every_n_with_tracking_is_fast_enough(vtest_run, settings):
    _, fps = vtest_run
    assert settings.detector.detect_every > 1
    assert fps >= 5.0


def test_tracker_ids_and_loss_on_synthetic_boxes():
    tracker = MultiObjectTracker(score_threshold=0.5, match_iou=0.3, max_missed=2)
    ids = []
    for i in range(6):  # a box moving right by 5 px per frame
        out = tracker.step([Detection("cup", 0.9, (100 + 5 * i, 100, 160 + 5 * i, 180))])
        ids.append([o.track_id for o in out.objects])
    assert ids == [[1]] * 6
    assert tracker.step(None).objects[0].box[0] > 120  # predicted further right between detections
    assert tracker.step([]).lost == []
    assert tracker.step([]).lost == [1]
    assert tracker.step([Detection("cup", 0.3, (0, 0, 10, 10))]).objects == []  # weak box starts no track


def test_track_object_person_until_blank(detector, settings, vtest):
    blank = [np.zeros_like(vtest[0])] * 15
    pipeline = ObjectPipeline.from_settings(detector, settings.detector)
    r = track_object("person", vtest[:30] + blank, pipeline)
    assert r.ok and r.data["matched_label"] == "person"
    assert len(r.data["track_ids"]) == 1 and r.data["status"] == "lost"
    assert 30 <= r.data["lost_at_frame"] < 45
    assert r.data["frames_tracked"] >= 20


def test_track_object_lost_when_frames_run_out(detector, settings, vtest):
    r = track_object("people", vtest[:12], ObjectPipeline.from_settings(detector, settings.detector))
    assert r.ok and r.data["status"] == "lost" and r.data["lost_at_frame"] == 12
    assert "ran out" in r.summary


def test_track_object_unknown_or_absent(detector, settings, vtest):
    assert not track_object("unicorn", vtest[:3], ObjectPipeline.from_settings(detector, settings.detector)).ok
    r = track_object("giraffe", vtest[:3], ObjectPipeline.from_settings(detector, settings.detector))
    assert not r.ok and "don't see" in r.summary


def test_match_label():
    assert match_label("the cups") == "cup"
    assert match_label("ball") == "sports ball"
    assert match_label("People") == "person"
    assert match_label("racket") == "tennis racket"
    assert match_label("unicorn") is None


def _mentioned(text: str) -> set[str]:
    from tools.vision.scene import plural

    text = text.lower()
    return {lab for lab in COCO_LABELS
            if any(re.search(rf"\b{re.escape(w.lower())}\b", text) for w in (lab, plural(lab, 2)[2:]))}


def test_describe_scene_messi_only_detected(detector, scenes):
    img = cv2.imread(str(scenes / "messi5.jpg"))
    dets = detector.detect(img)
    r = describe_scene(dets, (img.shape[1], img.shape[0]))
    found = {d.label for d in dets}
    assert r.ok and _mentioned(r.summary) == found
    assert r.data["counts"] == {lab: sum(d.label == lab for d in dets) for lab in found}
    ball = next(o for o in r.data["objects"] if o["label"] == "sports ball")
    assert ball["position"] == "centre"
    json.loads(r.to_json())


def test_describe_scene_empty_and_faces():
    r = describe_scene([], (640, 480))
    assert r.ok and r.data["counts"] == {} and _mentioned(r.summary) == set()
    r = describe_scene([{"label": "cup", "score": 0.6, "box": [0, 300, 100, 470]}], (640, 480),
                       faces=[{"box": [300, 50, 400, 150], "emotion": "happy"}])
    assert "1 cup (on the left, near)" in r.summary and "happy" in r.summary


def run_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    rc = main(["perceive", *argv, "--json", "--config", str(ROOT / "config.yaml")])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out.strip() else None), out.err


def test_perceive_image_and_annotation(capsys, detector, scenes, tmp_path):
    out = tmp_path / "messi.png"
    rc, data, _ = run_cli(capsys, "--image", str(scenes / "messi5.jpg"), "-o", str(out))
    assert rc == 0 and len(data["frames"]) == 1
    frame = data["frames"][0]
    assert frame["t"] == 0.0 and isinstance(frame["hands"], list)
    for face in frame["faces"]:  # the player's face: boxes in the same [x1, y1, x2, y2] form as objects
        x1, y1, x2, y2 = face["box"]
        assert x2 > x1 and y2 > y1 and "emotion" in face and "emotion_scores" in face
    assert {"person", "sports ball"} <= {o["label"] for o in frame["objects"]}
    assert all(set(o) == {"label", "score", "box", "track_id"} for o in frame["objects"])
    assert cv2.imread(str(out)).shape == cv2.imread(str(scenes / "messi5.jpg")).shape


def test_perceive_video(capsys, detector, scenes, tmp_path):
    out = tmp_path / "v.avi"
    rc, data, _ = run_cli(capsys, "--video", str(scenes / "vtest.avi"), "--max-frames", "8", "--every", "2",
                          "-o", str(out))
    assert rc == 0 and len(data["frames"]) == 8
    assert data["frames"][1]["t"] > 0 and data["frames"][1]["objects"]
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 8


def test_perceive_grey_image(capsys, detector, tmp_path):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((480, 640), 128, np.uint8))
    rc, data, _ = run_cli(capsys, "--image", str(grey))
    assert rc == 0 and data["frames"][0]["objects"] == []


@pytest.mark.parametrize("kind", ["empty-image", "text-image", "missing", "empty-video", "text-video"])
def test_perceive_bad_input(capsys, tmp_path, kind):
    name, content = {"empty-image": ("e.jpg", b""), "text-image": ("t.jpg", b"not an image"),
                     "missing": ("m.jpg", None), "empty-video": ("e.avi", b""),
                     "text-video": ("t.mp4", b"not a video" * 10)}[kind]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    flag = "--video" if name.endswith((".avi", ".mp4")) else "--image"
    rc, data, err = run_cli(capsys, flag, str(path))
    assert rc == 2 and data is None
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "[image-invalid]" in errors[0] and "Traceback" not in err
