"""A failing stage never hangs or silently ends a session; per-frame camera/mapping errors are skipped."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.common.audio_io import write_wav
from agent.session.runner import Parts, SessionRunner
from agent.session.stages import Stats, make_vad
from tests.fakes import FakeGate
from tools.common.errors import ConfigError
from tools.common.pcm import SAMPLE_RATE as SR

FRAME = 480
ROOT = Path(__file__).resolve().parent.parent


class BrokenSource:
    """A microphone that delivers ``n`` frames of silence, then fails."""

    sample_rate, frame_samples = SR, FRAME
    reconnect = None  # a recording: nothing to reconnect

    def __init__(self, n: int = 20) -> None:
        self.n = n

    def __iter__(self):  # noqa: ANN204
        for _ in range(self.n):
            yield np.zeros(FRAME, np.int16)
        raise RuntimeError("microphone unplugged")


class QuietSource(BrokenSource):
    def __iter__(self):  # noqa: ANN204
        for _ in range(self.n):
            yield np.zeros(FRAME, np.int16)


class NoWake:
    def process(self, frame):  # noqa: ANN001, ANN201
        return None


class BrokenWake:
    def __init__(self, after: int = 5) -> None:
        self.after = after

    def process(self, frame):  # noqa: ANN001, ANN201
        self.after -= 1
        if self.after < 0:
            raise ValueError("wake model crashed")
        return None


class BrokenTurns:
    """The turn detector fails on its 5th frame."""

    def __init__(self, after: int = 5) -> None:
        self.after = after

    def process(self, pcm):  # noqa: ANN001, ANN201
        self.after -= 1
        if self.after < 0:
            raise ValueError("vad crashed")
        return None

    def flush(self):  # noqa: ANN201
        return None


def run_session(settings, source, wake=None, turns=None) -> list[dict]:  # noqa: ANN001
    real_turns, voiced = make_vad(settings)
    parts = Parts(source=source, turns=turns or real_turns, voiced=voiced, wake=wake or NoWake(),
                  gate=FakeGate(), asr=None, controller=None, tts=None, face_checks=False)
    runner = SessionRunner(settings, parts)
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(events=runner.run(max_wall_s=None)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the session hung after a stage failed"
    runner.stop.set()
    return out["events"]


def errors(events: list[dict]) -> list[dict]:
    return [{k: e[k] for k in ("type", "stage", "message")} for e in events if e["type"] == "error"]


@pytest.mark.parametrize("stage, kwargs, message", [
    ("source", {"source": BrokenSource()}, "RuntimeError: microphone unplugged"),
    ("vad", {"source": QuietSource(400), "turns": BrokenTurns()}, "ValueError: vad crashed"),
    ("wake", {"source": QuietSource(400), "wake": BrokenWake()}, "ValueError: wake model crashed"),
])
def test_a_dying_stream_stage_ends_the_session_with_an_error_event(settings, stage, kwargs, message):
    events = run_session(settings, **kwargs)
    assert errors(events) == [{"type": "error", "stage": stage, "message": message}]
    assert events[-1]["type"] == "stats"


def test_stats_keep_a_bounded_window():
    stats = Stats(window=5)
    for i in range(12):
        stats.add("vad", i / 1000)
    assert len(stats.values["vad"]) == 5
    s = stats.summary()["vad"]
    assert s["n"] == 12 and s["median_ms"] == 9.0  # of the last five: 7..11 ms


class FlakyProcessor:
    """Fails on its first frame, then works."""

    def __init__(self) -> None:
        self.calls = 0
        self.state = None

    def process(self, frame, t=None):  # noqa: ANN001, ANN201
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("bad frame")


def wait_for(cond, timeout: float = 5.0) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_camera_stage_skips_a_failing_frame_and_keeps_going():
    from tools.vision.camera import CameraStage
    from tools.vision.capture import StillSource

    proc = FlakyProcessor()
    with CameraStage(proc, StillSource(np.zeros((8, 8, 3), np.uint8), fps=100.0)) as stage:
        assert wait_for(lambda: stage.frames_processed >= 3)
    assert stage.frame_errors == 1 and stage.error is None


def test_mapping_stage_skips_a_failing_frame_and_keeps_going():
    from tools.slam.stage import MappingStage

    stage = MappingStage(np.eye(3))
    proc = FlakyProcessor()
    stage.process = proc.process  # type: ignore[method-assign]
    stage.active.set()
    stage.start()
    try:
        for i in range(50):
            stage.offer(float(i), np.zeros((8, 8, 3), np.uint8))
            if proc.calls >= 3:
                break
            time.sleep(0.02)
        assert wait_for(lambda: proc.calls >= 3)
    finally:
        stage.stop()
    assert stage.frame_errors == 1 and stage.error is None


def test_bad_slam_intrinsics_is_a_config_error(tmp_path):
    from agent.common.config import SlamSettings
    from tools.slam.stage import MappingStage

    with pytest.raises(ConfigError, match="slam.intrinsics") as e:
        MappingStage.for_camera(SlamSettings(intrinsics=str(tmp_path / "missing.yaml")))
    assert "\n" not in str(e.value)


def test_run_with_a_bad_video_exits_2_before_any_model_loads(settings, tmp_path, capsys, monkeypatch):
    import agent.session.assistant
    from agent.app.cli import main

    def no_models(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("models loaded before the face feed was checked")

    monkeypatch.setattr(agent.session.assistant.Assistant, "__init__", no_models)
    wav = write_wav(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    bad = tmp_path / "missing.mp4"
    assert main(["run", "--audio", str(wav), "--video", str(bad), "--config", str(ROOT / "config.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err
