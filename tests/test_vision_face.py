"""Faces, emotion and gestures on real data from ../shared/testdata."""
from __future__ import annotations

import json

import numpy as np
import pytest

from agent.app.cli import main as cli_main
from agent.common.config import load_settings
from tools.common.errors import ErrorCode, MMChatError
from tools.vision import gestures as g
from tools.vision.emotion import EMOTIONS

SETTINGS = load_settings(None)
TD = SETTINGS.testdata_dir
pytestmark = pytest.mark.skipif(not (TD / "faces").is_dir(), reason="../shared/testdata not present")


@pytest.fixture(scope="module")
def analyser():
    from tools.vision.face_hands import FaceHandsAnalyser

    a = FaceHandsAnalyser(SETTINGS)
    yield a
    a.close()


def _held_out(csv: str, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = g.load_csv(TD / "gestures" / csv, n_features)
    _, test = g.held_out_split(y)
    return x[test], y[test]


def test_static_gesture_cli_on_held_out_rows(tmp_path, capsys):
    x, y = _held_out("hand_keypoints.csv", 2 * g.N_LANDMARKS)
    csv = tmp_path / "held_out.csv"
    np.savetxt(csv, np.column_stack([y, x]), delimiter=",", fmt="%.10g")
    assert cli_main(["eval", "gestures", "--csv", str(csv), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == len(y) > 500
    assert out["accuracy"] >= 0.95
    assert np.array(out["confusion"]).sum() == len(y)


def test_dynamic_gesture_held_out():
    x, y = _held_out("point_history.csv", 2 * g.HISTORY_LEN)
    report = g.evaluate(g.load_model(g.DYNAMIC_MODEL), x, y)
    assert report["n"] > 1000 and report["accuracy"] >= 0.9


def test_live_landmarks_get_the_csv_preprocessing():
    x, y = _held_out("hand_keypoints.csv", 2 * g.N_LANDMARKS)
    row = x[0].reshape(g.N_LANDMARKS, 2)
    pixels = row * 87.5 + np.array([320.0, 240.0])  # the same hand, in image pixels
    np.testing.assert_allclose(g.static_features(pixels), x[0], atol=1e-5)
    assert g.GestureRecognizer().shape(pixels).label == g.STATIC_LABELS[y[0]]


def test_bad_gesture_csv_is_a_typed_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(MMChatError) as e:
        g.load_csv(bad, 42)
    assert e.value.code is ErrorCode.BAD_INPUT
    assert cli_main(["eval", "gestures", "--csv", str(bad)]) == 2


def test_debouncer_needs_a_held_gesture():
    d = g.GestureDebouncer(SETTINGS.vision.gesture_modes, hold_ms=300, hold_frames=3)
    assert [d.update("Close", t) for t in (0, 100, 200)] == [None, None, None]  # not held long enough
    assert d.update("Close", 300) == "privacy"
    assert d.update("Close", 400) is None  # fires once per hold
    assert d.update("Open", 500) is None and d.update("Open", 700) is None and d.update("Open", 800) == "conversation"
    assert d.update(None, 900) is None and d.update("Unknown", 1000) is None


@pytest.mark.parametrize("person", ["obama", "biden", "alex_lacamoire", "lin_manuel_miranda", "kit_harington",
                                    "rose_leslie"])
def test_face_and_emotion_on_photos(analyser, person):
    from tools.vision.face_hands import load_image

    for path in sorted((TD / "faces" / "enroll" / person).iterdir()):
        r = analyser.analyse(load_image(path))
        assert len(r.faces) == 1, path.name
        face = r.faces[0]
        assert face.landmarks.shape == (478, 3)
        assert set(face.emotion_scores) == set(EMOTIONS)
        assert sum(face.emotion_scores.values()) == pytest.approx(1.0, abs=1e-3)
        assert face.emotion == max(face.emotion_scores, key=face.emotion_scores.get)
        x, y, w, h = face.box
        assert w > 20 and h > 20 and x + w <= r.width and y + h <= r.height


@pytest.mark.parametrize("path", ["enroll/obama/obama.jpg", "probe/obama_small.jpg",
                                  "enroll/alex_lacamoire/alex-lacamoire.png"])
def test_broad_smiles_read_as_happy(analyser, path):
    from tools.vision.face_hands import load_image

    (face,) = analyser.analyse(load_image(TD / "faces" / path)).faces
    assert face.emotion == "happy"


def test_two_people_and_grey_copy(analyser):
    import cv2

    from tools.vision.face_hands import load_image

    img = load_image(TD / "faces" / "probe" / "two_people.jpg")
    assert len(analyser.analyse(img).faces) == 2
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # one channel
    r = analyser.analyse(grey)
    assert len(r.faces) == 2 and r.to_json()["faces"][0]["emotion"] in EMOTIONS


@pytest.mark.parametrize("frame", [np.full((480, 640), 128, np.uint8), np.zeros((480, 640, 3), np.uint8),
                                   np.zeros((3, 3, 3), np.uint8), np.full((240, 320, 4), 255, np.uint8)],
                         ids=["grey", "blank", "tiny", "bgra"])
def test_empty_frames_have_no_faces(analyser, frame):
    r = analyser.analyse(frame)
    assert r.faces == [] and r.hands == []


def test_unreadable_inputs_are_typed_errors(analyser, tmp_path):
    from tools.vision.face_hands import load_image

    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"not a jpeg at all")
    for path in (junk, tmp_path / "missing.png"):
        with pytest.raises(MMChatError) as e:
            load_image(path)
        assert e.value.code is ErrorCode.IMAGE_INVALID
    for bad in (None, "photo.jpg", np.zeros((0, 0, 3), np.uint8), np.zeros((8, 8, 5), np.uint8)):
        with pytest.raises(MMChatError) as e:
            analyser.analyse(bad)
        assert e.value.code is ErrorCode.IMAGE_INVALID


def test_video_mode_on_clip():
    from agent.evals.bench_vision_face import clip_frames
    from tools.vision.face_hands import FaceHandsAnalyser

    a = FaceHandsAnalyser(SETTINGS, video=True)
    try:
        results = [a.analyse(f, t_ms=i * 33.3) for i, f in enumerate(clip_frames(SETTINGS, limit=12))]
    finally:
        a.close()
    with_faces = [r for r in results if r.faces]
    assert len(with_faces) >= 6
    for r in with_faces:
        for f in r.faces:
            assert sum(f.emotion_scores.values()) == pytest.approx(1.0, abs=1e-3)
