"""One live camera shared by the face gate and the camera stage (the ``--live`` / ``run --camera`` path).

No camera here: a real video file is opened *as* the camera (``run --camera FILE``), which runs the
same code as a device -- one reader on the wall clock, the gate sampling its recent frames.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agent.common.config import load_settings
from tests.fakes import SPEECH, FakeController, compose, types

ROOT = Path(__file__).resolve().parent.parent
FACES = (ROOT / "../shared/testdata/faces").resolve()
CLIP = FACES / "probe" / "short_hamilton_clip.mp4"

pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason="shared testdata missing")


def test_recent_frames_window_spreads_and_expires():
    from tools.vision.camera import RecentFrames

    r = RecentFrames(keep_s=2.0)
    for i in range(40):  # 4 s at 10 fps; frame i is filled with i
        r.add(100.0 + i / 10, np.full((2, 2), i, np.uint8))
    got = r.window(1.0, 5, now=103.9)
    assert [int(f[0, 0]) for f in got] == [29, 31, 34, 36, 39]
    assert r.window(1.0, 5, now=110.0) == []  # nothing in view any more
    assert len(r.window(10.0, 100, now=103.9)) == 21  # only the last keep_s are kept


def test_bad_camera_is_a_device_error():
    from agent.identity.gate import CameraFace
    from tools.common.errors import ErrorCode, MMChatError

    with pytest.raises(MMChatError) as e:
        CameraFace(7)
    assert e.value.code is ErrorCode.DEVICE and "no camera at device index 7" in str(e.value)


def test_session_shares_one_camera_between_gate_and_perception(tmp_path):
    from agent.identity.verify import IdentityChecker
    from agent.session.assistant import Assistant
    from agent.session.runner import SessionRunner, build_parts
    from agent.session.scripted import synth

    s = load_settings(ROOT / "config.yaml", overrides={"paths": {"profiles": str(tmp_path / "profiles")}})
    IdentityChecker(s).enroll("lin", [SPEECH / f"spk1_snt{i}.wav" for i in (1, 2, 3)],
                              sorted((FACES / "enroll" / "lin_manuel_miranda").iterdir()))
    assistant = Assistant(s)
    audio = compose(synth(assistant.tts, "Hey Jarvis."), "spk1_snt4.wav")
    parts = build_parts(s, audio=audio, camera=str(CLIP), assistant=assistant)
    parts.controller = FakeController(["Hello Lin."])
    hook = parts.perception
    assert parts.gate.feed.kind == "camera" and hook is not None and hook.source is not None
    t0 = time.monotonic()
    events = SessionRunner(s, parts, tmp_path).run(max_wall_s=90)
    verify = next(e for e in events if e["type"] == "verify")
    assert verify["decision"] == "accept" and verify["user"] == "lin", verify
    assert verify["face_source"] == "camera" and verify["liveness"]["live"], verify
    assert "unlock" in types(events) and "reply" in types(events)
    # the session ran on the wall clock (the camera's), and the one reader fed the camera stage too
    stream_s = next(e for e in events if e["type"] == "stats")["stream_s"]
    assert time.monotonic() - t0 >= 0.9 * len(audio) / 16000 and stream_s >= len(audio) / 16000
    assert hook.stage is not None and hook.stage.frames_processed > 5 and not hook.stage.running


def test_a_stopped_camera_is_reported_not_taken_for_an_empty_room():
    from agent.identity.gate import CameraFace
    from tools.common.errors import MMChatError

    feed = CameraFace(str(CLIP))  # opened, but no reader has delivered a frame
    try:
        with pytest.raises(MMChatError, match="camera stopped"):
            feed.frames(1.0, 3.0, 5)
        feed.recent.add(time.monotonic(), np.zeros((4, 4, 3), np.uint8))
        assert len(feed.frames(0.0, 3.0, 5)) == 1  # fresh frames: fine again
    finally:
        feed.close()


def test_live_main_job_fails_fast_and_plainly_without_devices():
    """``main.py --live`` on a machine with no microphone: one line, exit 2, before any model loads."""
    import subprocess
    import sys

    from agent.listen.sources import default_input_device
    from tools.common.errors import MMChatError

    try:
        default_input_device()
        pytest.skip("a microphone is present: --live would start a real session")
    except MMChatError:
        pass
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--live"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and time.monotonic() - t0 < 30, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "mmchat: error [device-unavailable]: no microphone found; use --audio FILE"
