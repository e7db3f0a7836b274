"""Live devices that go away and come back: the back-off and the reconnector, and the microphone's
stream dying (a fake stream: that part is plumbing; the session over it is real)."""
from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tools.common.devices import Backoff, DeviceState, DeviceStatus, Reconnector

ROOT = Path(__file__).resolve().parent.parent
CLIP = (ROOT / "../shared/testdata/faces/probe/short_hamilton_clip.mp4").resolve()
DOWN, RECONNECTING, UP = DeviceState.DOWN, DeviceState.RECONNECTING, DeviceState.UP


# -- pure logic ---------------------------------------------------------------------------------
def test_backoff_doubles_to_its_cap_and_resets():
    b = Backoff()
    assert [b.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next() == 0.5


def test_reconnector_paces_attempts_and_reports_each_change_once():
    now = [100.0]
    r = Reconnector("camera", clock=lambda: now[0])
    seen: list[DeviceStatus] = []
    r.listeners.append(seen.append)
    calls = []

    def failing():  # noqa: ANN202
        calls.append(now[0])
        raise OSError("connection refused")

    assert r.attempt(failing) is None and not calls  # up: nothing to reopen
    r.lost("no frames")
    r.lost("still no frames")  # one DOWN per outage
    assert r.attempt(failing) is None and not calls  # the first delay (0.5 s) has not passed
    for step in (0.5, 1.0, 2.0):
        now[0] += step
        assert r.attempt(failing) is None
    assert calls == [100.5, 101.5, 103.5] and r.state is RECONNECTING
    now[0] += 4.0
    assert r.attempt(lambda: "cap") == "cap" and r.up
    assert [(s.state, s.attempts) for s in seen] == [(DOWN, 0), (RECONNECTING, 1), (UP, 3)]
    assert seen[0].reason == "no frames" and "connection refused" in seen[1].reason
    r.lost("again")  # a new outage starts from the first delay
    now[0] += 0.5
    assert r.attempt(lambda: "cap") == "cap" and [s.state for s in seen[3:]] == [DOWN, UP]


def test_reopen_waits_until_cancelled():
    r = Reconnector("camera", Backoff(0.05, 0.2))
    r.lost("gone")
    got: list[object] = ["unset"]
    t = threading.Thread(target=lambda: got.__setitem__(0, r.reopen(lambda: None)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive() and r.state is RECONNECTING and r.attempts >= 3
    r.cancel()
    t.join(1.0)
    assert not t.is_alive() and got[0] is None


# -- the camera: a real MJPEG stream over HTTP ---------------------------------------------------


class FakeStreams:
    """A ``StreamFactory`` over real audio: stream 1 delivers ``die_after`` frames and then fails (its
    callback raises, PortAudio ends the stream), the next ``refuse`` opens raise, the one after
    delivers the rest of the audio in real time, then silence."""

    def __init__(self, audio: np.ndarray, frame_samples: int, die_after: int, refuse: int = 1,
                 period_s: float = 0.03) -> None:
        from agent.listen.sources import frames_of

        self.frames = list(frames_of(audio, frame_samples))
        self.frame_samples, self.die_after, self.refuse, self.period = frame_samples, die_after, refuse, period_s
        self.opened = 0
        self.pos = 0
        self.threads: list[threading.Thread] = []

    def __call__(self, callback, finished_callback):  # noqa: ANN001, ANN204
        self.opened += 1
        if 1 < self.opened <= 1 + self.refuse:
            raise OSError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        factory, first = self, self.opened == 1

        class Stream:
            def __init__(self) -> None:
                self.closed = threading.Event()

            def start(self) -> None:
                t = threading.Thread(target=self._run, daemon=True)
                factory.threads.append(t)
                t.start()

            def _run(self) -> None:
                sent = 0
                try:
                    while not self.closed.is_set():
                        if first and sent == factory.die_after:
                            raise OSError("the USB microphone was unplugged")
                        frame = factory.frames[factory.pos] if factory.pos < len(factory.frames) else \
                            np.zeros(factory.frame_samples, np.int16)
                        factory.pos += 1
                        callback(frame.reshape(-1, 1), len(frame), None, None)
                        sent += 1
                        time.sleep(factory.period)
                except OSError:
                    pass
                finally:
                    finished_callback()

            def close(self) -> None:
                self.closed.set()

        return Stream()


def test_mic_yields_silence_while_it_reopens_then_audio_resumes():
    from agent.listen.sources import MicSource

    audio = (np.arange(16000 * 3) % 200 + 1).astype(np.int16)  # never silent: silence marks the outage
    streams = FakeStreams(audio, 480, die_after=20, refuse=1, period_s=0.005)
    mic = MicSource(stream_factory=streams, backoff=Backoff(0.1, 0.4))
    seen: list[DeviceStatus] = []
    mic.reconnect.listeners.append(seen.append)
    frames = list(itertools.islice(iter(mic), 60))
    loud = [bool(np.abs(f).max()) for f in frames]
    first_silent = loud.index(False)
    resumed = first_silent + loud[first_silent:].index(True)
    assert first_silent == 20 and all(not x for x in loud[20:resumed]) and all(loud[resumed:])
    assert resumed - first_silent >= int(0.1 / 0.03)  # silence on the wall clock through the back-off
    assert np.array_equal(frames[resumed], audio[20 * 480:21 * 480])  # nothing of the audio lost
    assert [s.state for s in seen] == [DOWN, RECONNECTING, UP] and seen[0].device == "microphone"
    assert "stream stopped" in seen[0].reason and "Device unavailable" in seen[1].reason
    assert streams.opened == 3


def test_mic_stall_counts_as_lost():
    from agent.listen.sources import MicSource

    class Silent:  # a stream that opens and then never calls back
        def start(self) -> None:
            pass

        def close(self) -> None:
            pass

    mic = MicSource(stream_factory=lambda cb, fin: Silent(), stall_s=0.2, backoff=Backoff(5.0))
    seen: list[DeviceStatus] = []
    mic.reconnect.listeners.append(seen.append)
    t0 = time.monotonic()
    frames = list(itertools.islice(iter(mic), 10))
    assert [(s.state, s.reason) for s in seen] == [(DOWN, "no audio for 0.2 s")]
    assert all(not f.any() for f in frames) and time.monotonic() - t0 < 1.0  # the stalled 0.2 s filled at once


def test_mic_that_never_opens_is_a_device_error():
    from agent.listen.sources import MicSource
    from tools.common.errors import ErrorCode, MMChatError

    def refuse(cb, fin):  # noqa: ANN001, ANN202
        raise OSError("no such device")

    with pytest.raises(MMChatError) as e:
        next(iter(MicSource(stream_factory=refuse)))
    assert e.value.code is ErrorCode.DEVICE and "no such device" in str(e.value)


class Limited:
    """The first ``n`` frames of a live source (a session over a microphone must end for the test)."""

    def __init__(self, mic, n: int) -> None:  # noqa: ANN001
        self.mic, self.n = mic, n
        self.sample_rate, self.frame_samples, self.reconnect = mic.sample_rate, mic.frame_samples, mic.reconnect

    def __iter__(self):  # noqa: ANN204
        return itertools.islice(iter(self.mic), self.n)


@pytest.mark.skipif(not (CLIP.parents[2] / "speech").is_dir(), reason="shared testdata missing")
def test_session_says_the_microphone_is_lost_and_back_and_still_answers(settings):
    """The real session (VAD, wake word, Piper) over a microphone whose stream dies before the wake word:
    DEVICE events down -> reconnecting -> up, both changes said, and the turn after it answered."""
    from agent.common.phrases import device_line
    from agent.listen.sources import MicSource
    from agent.session.scripted import silence, synth
    from agent.speak.tts import PiperTTS
    from tests.fakes import FakeASR, FakeController, compose, run_fake, types

    tts = PiperTTS(settings.tts, settings.models_dir)
    audio = np.concatenate([silence(6.0), compose(synth(tts, "Hey Jarvis."), "spk1_snt4.wav")])
    streams = FakeStreams(audio, 480, die_after=10, refuse=1, period_s=0.002)
    mic = MicSource(stream_factory=streams, backoff=Backoff(0.1, 0.4))
    events, _ = run_fake(settings, tts, Limited(mic, len(streams.frames) + 40), FakeASR(["what time is it"]),
                         FakeController(["It is noon."]))
    device = [e for e in events if e["type"] == "device"]
    assert [(e["device"], e["state"]) for e in device] == [("microphone", "down"), ("microphone", "reconnecting"),
                                                           ("microphone", "up")], device
    assert device[0]["line"] == device_line("microphone", DOWN) == "I've lost the microphone; I'll keep trying."
    notices = [e["text"] for e in events if e["type"] == "notice"]
    assert notices == [device_line("microphone", DOWN), device_line("microphone", UP)]
    kinds = types(events)
    assert kinds.index("device") < kinds.index("wake") < kinds.index("unlock") < kinds.index("reply")
    assert next(e for e in events if e["type"] == "reply")["text"] == "It is noon."
    assert "error" not in kinds


def test_a_stopped_camera_is_logged_once_per_outage():
    """While unlocked, every face check on a stopped camera fails: one ERROR event for the outage (not one
    per check), each failure still counted as no face; after a working check a new outage is logged again."""
    from agent.common.config import load_settings
    from agent.session.conductor import Conductor
    from agent.session.stages import Busy, Stage, StageResult
    from agent.session.state import Session
    from agent.session.turns import FaceJob, Lanes, TurnPolicy
    from agent.speak.playback import Playback, StreamClock

    clock = StreamClock()
    c = Conductor(Session(load_settings(None).session), Lanes(), Playback(clock), Busy(clock), TurnPolicy())
    stopped = "face check failed: camera stopped: no frame from 0 for 4 s"
    for t, error in [(1, stopped), (3, stopped), (5, stopped), (7, None), (9, stopped)]:
        c.on_result(StageResult(Stage.VERIFY, FaceJob(float(t)), value=error is None, error=error))
    logged = [e["t"] for e in c.s.events if e["type"] == "error" and e.get("stage") == "camera"]
    assert logged == [1.0, 9.0], c.s.events


def test_device_timings_come_from_config(tmp_path):
    """``devices:`` in config.yaml reaches the live sources: a malformed section is refused by name, and
    a configured back-off and stall are what the microphone uses."""
    from agent.common.config import load_settings
    from agent.listen.sources import MicSource
    from tools.common.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  backoff_first_s: 4\n  backoff_cap_s: 1\n")
    with pytest.raises(ConfigError, match="backoff_cap_s"):
        load_settings(bad)
    good = tmp_path / "good.yaml"
    good.write_text("devices:\n  backoff_first_s: 0.1\n  backoff_cap_s: 0.4\n  mic_stall_s: 0.3\n")
    cfg = load_settings(good).devices
    backoff = Backoff.of(cfg)
    assert [backoff.next() for _ in range(4)] == [0.1, 0.2, 0.4, 0.4]

    class Silent:  # a stream that opens and then never calls back
        def start(self) -> None:
            pass

        def close(self) -> None:
            pass

    mic = MicSource(stream_factory=lambda cb, fin: Silent(), backoff=Backoff.of(cfg), stall_s=cfg.mic_stall_s)
    seen: list[DeviceStatus] = []
    mic.reconnect.listeners.append(seen.append)
    list(itertools.islice(iter(mic), 10))
    assert [(x.state, x.reason) for x in seen] == [(DOWN, "no audio for 0.3 s")]
