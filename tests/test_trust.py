"""Trust: the owner's real voice alone never unlocks when identity.require_face is on, and every
voice decision carries its numbers (score, threshold, margin, normalisation)."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.common.audio_io import load_audio
from agent.identity.gate import IdentityGate, ImageFace, NoFace, VideoFace
from tests.fakes import FakeASR, FakeController, compose, enrol_owner, run_fake, settings_for, types

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()
SPEECH, FACES = TESTDATA / "speech", TESTDATA / "faces"
OWNER_PHOTO = FACES / "enroll" / "obama" / "obama.jpg"

pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")


def _still_video(path: Path, image: Path, seconds: float = 12.0, fps: int = 10) -> Path:
    """A camera that shows one photo and nothing else moves (a printed photo held up)."""
    import cv2

    frame = cv2.imread(str(image))
    h, w = frame.shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w - w % 2, h - h % 2))
    for _ in range(int(seconds * fps)):
        out.write(frame[:h - h % 2, :w - w % 2])
    out.release()
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """The owner: spk1's voice (snt1-3) and Obama's face; defaults otherwise (require_face, liveness)."""
    s = settings_for(tmp_path_factory.mktemp("p"))
    assert s.identity.require_face and s.identity.require_liveness and not s.session.face.allow_still
    return enrol_owner(s, "owner")


@pytest.fixture(scope="module")
def checker(settings):
    from agent.identity.verify import IdentityChecker

    return IdentityChecker(settings)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("cams")
    return {"still_owner": _still_video(d / "still.mp4", OWNER_PHOTO),
            "empty_room": _still_video(d / "empty.mp4", TESTDATA / "scenes" / "fruits.jpg")}


def test_owner_voice_without_a_live_face_is_refused(settings, checker, videos):
    voice = load_audio(SPEECH / "spk1_snt4.wav")
    feeds = {"none": NoFace(), "photo": ImageFace(OWNER_PHOTO),
             "still camera": VideoFace(videos["still_owner"]), "empty camera": VideoFace(videos["empty_room"])}
    results = {name: IdentityGate(settings, feed, checker).check(voice, 4.0) for name, feed in feeds.items()}
    for name, r in results.items():
        assert r.decision == "reject" and r.user is None, (name, r)
        # the voice itself matched: it is the face/liveness step that refuses
        assert r.details["voice_user"] == "owner" and r.details["voice_margin"] > 0, (name, r.details)
        assert r.details["voice_threshold"] == settings.identity.voice_threshold
    assert "liveness failed" in results["still camera"].reason and results["still camera"].details["face_margin"] < 0
    assert "no face in view" in results["empty camera"].reason


def test_session_never_unlocks_on_voice_alone(settings, checker, videos, tmp_path):
    """A whole session: wake word, then the owner's real command, in front of a still camera."""
    from agent.session.scripted import synth
    from agent.speak.tts import PiperTTS

    tts = PiperTTS(settings.tts, settings.models_dir)
    audio = compose(synth(tts, "Hey Jarvis."), "spk1_snt4.wav")
    controller = FakeController(["This must never be said."])
    gate = IdentityGate(settings, VideoFace(videos["still_owner"]), checker)
    events, _ = run_fake(settings, tts, audio, FakeASR(["what time is it"]), controller, gate=gate,
                         run_dir=tmp_path)
    kinds = types(events)
    assert "wake" in kinds and "verify" in kinds and "unlock" not in kinds, events
    assert controller.calls == [] and not {"transcript", "reply"} & set(kinds)
    v = next(e for e in events if e["type"] == "verify")
    assert v["decision"] == "reject" and v["voice_user"] == "owner" and v["voice_margin"] > 0, v
    assert {"voice_score", "voice_threshold", "voice_margin", "voice_norm"} <= set(v)


def test_verify_json_explains_the_voice_decision(checker):
    d = checker.verify(voice=SPEECH / "spk2_snt1.wav").as_json()
    thr = checker.cfg.voice_threshold
    assert d["decision"] == "reject" and d["voice_threshold"] == thr and d["voice_norm"] == "none"
    assert d["voice_margin"] == pytest.approx(d["voice_score"] - thr, abs=1e-3) and d["voice_margin"] < 0
    assert f"below {thr:g}" in d["reason"]
    f = checker.verify(face=FACES / "probe" / "obama_small.jpg").as_json()
    assert f["face_threshold"] == checker.cfg.face_threshold and f["face_margin"] < 0 and "voice_threshold" not in f
