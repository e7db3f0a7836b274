"""Live devices that go away and come back: the back-off, a real MJPEG-over-HTTP camera killed and
restarted mid-stream, and the microphone's stream dying (a fake stream: that part is plumbing)."""
from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tools.common.devices import Backoff, DeviceState, DeviceStatus, Reconnector

ROOT = Path(__file__).resolve().parent.parent
CLIP = (ROOT / "../shared/testdata/faces/probe/short_hamilton_clip.mp4").resolve()
DOWN, RECONNECTING, UP = DeviceState.DOWN, DeviceState.RECONNECTING, DeviceState.UP


def wait_for(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


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
def clip_jpegs(first: int = 81, end: int = 229, step: int = 4) -> list[bytes]:
    """Frames of the Hamilton clip (a person in view), JPEG-encoded as an IP camera would send them."""
    import cv2

    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    out = []
    for i in range(first, end):
        ok, frame = cap.read()
        if not ok:
            break
        if (i - first) % step == 0:
            out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    cap.release()
    return out


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG frames at ``/stream.mjpg``, like an IP camera; ``kill`` drops
    every connection at once, as a camera losing power would."""

    def __init__(self, port: int, jpegs: list[bytes], fps: float = 15.0) -> None:
        self.port, self.jpegs, self.period = port, jpegs, 1.0 / fps
        self.alive = threading.Event()
        self.clients = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.clients += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for jpg in itertools.cycle(server.jpegs):
                        if not server.alive.is_set():
                            return
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                        time.sleep(server.period)
                except OSError:  # the client went away
                    return

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegServer":
        self.alive.set()
        self.thread.start()
        return self

    def kill(self) -> None:
        self.alive.clear()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    if not CLIP.is_file():
        pytest.skip("shared testdata missing")
    return clip_jpegs()


class Reader:
    """Reads a frame source on its own thread (as the camera stage's reader does), timing each frame."""

    def __init__(self, source) -> None:  # noqa: ANN001
        self.source, self.frames = source, []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (frame := self.source.read()) is not None:
            self.frames.append((time.monotonic(), frame.shape))


def test_opencv_reads_an_mjpeg_http_stream(jpegs):
    """OpenCV's FFMPEG backend (this venv's wheel) decodes ``multipart/x-mixed-replace`` over HTTP."""
    import cv2

    from tests.fakes import free_port

    server = MjpegServer(free_port(), jpegs).start()
    try:
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG)
        assert cap.isOpened() and cap.getBackendName() == "FFMPEG"
        shapes = [cap.read()[1].shape for _ in range(5)]
        cap.release()
    finally:
        server.kill()
    assert shapes == [cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR).shape] * 5


def test_stream_camera_killed_and_restarted_comes_back(jpegs):
    from tests.fakes import free_port
    from tools.vision.capture import CaptureSource, open_source

    port = free_port()
    server = MjpegServer(port, jpegs).start()
    source = open_source(server.url)
    assert isinstance(source, CaptureSource) and source.reconnect is not None
    seen: list[DeviceStatus] = []
    source.reconnect.listeners.append(seen.append)
    reader = Reader(source)
    try:
        wait_for(lambda: len(reader.frames) >= 10, 20, "frames from the stream")
        server.kill()
        killed = time.monotonic()
        wait_for(lambda: seen, 20, "the camera reported down")
        time.sleep(1.5)  # stay down past the first reopen attempt (0.5 s after DOWN): RECONNECTING
        server = MjpegServer(port, jpegs).start()  # the camera comes back, on the same port
        restarted = time.monotonic()
        wait_for(lambda: len(seen) >= 3 and seen[-1].state is UP, 30, "the camera reported back")
        back = len(reader.frames)
        wait_for(lambda: len(reader.frames) >= back + 10, 20, "frames after the recovery")
        assert [s.state for s in seen[:3]] == [DOWN, RECONNECTING, UP], seen
        assert seen[0].device == "camera" and "no frames from http://127.0.0.1" in seen[0].reason
        assert seen[0].t >= killed and seen[2].t >= restarted and seen[2].attempts >= 1
        assert reader.thread.is_alive() and server.clients == 1  # one reader, reconnected, never ended
        shapes = {shape for _, shape in reader.frames}
        assert len(shapes) == 1  # the same camera picture before and after
        gaps = np.diff([t for t, _ in reader.frames])
        assert gaps.max() < (seen[2].t - killed) + 1.0  # one outage, then frames at the stream's rate
    finally:
        source.reconnect.cancel()
        server.kill()
        reader.thread.join(10)
        source.close()
    assert not reader.thread.is_alive()


class Counter:
    """The camera stage's processor here: only counts frames (the analysers are tested elsewhere)."""

    def __init__(self) -> None:
        from tools.vision.state import PerceptionState

        self.state, self.n = PerceptionState(), 0

    def process(self, frame, t=None):  # noqa: ANN001, ANN201
        self.n += 1


def test_camera_stage_stop_ends_a_reconnect_wait(jpegs):
    """Stopping the stage while the camera is gone: the reader gives up its back-off wait at once."""
    from tests.fakes import free_port
    from tools.vision.camera import CameraStage, TeeSource
    from tools.vision.capture import open_source

    server = MjpegServer(free_port(), jpegs).start()
    source = TeeSource(TeeSource(open_source(server.url)))  # wrapped as in a live session (gate, mapping)
    assert source.reconnect is not None
    source.reconnect.backoff = Backoff(8.0, 8.0)  # a long wait to interrupt
    counter = Counter()
    stage = CameraStage(counter, source).start()  # type: ignore[arg-type]
    wait_for(lambda: counter.n >= 3, 20, "frames analysed")
    server.kill()
    wait_for(lambda: not source.reconnect.up, 20, "the camera reported down")
    t0 = time.monotonic()
    stage.stop()
    assert time.monotonic() - t0 < 2.0 and not stage.running


@pytest.mark.slow  # ~35 s: a real-time session
@pytest.mark.skipif(not (CLIP.parents[2] / "speech").is_dir(), reason="shared testdata missing")
def test_session_says_the_camera_is_lost_and_back(jpegs, settings):
    """A live session on a stream camera (``run --camera URL``: the gate's CameraFace, the stage reading it)
    whose server dies and comes back mid-session: DEVICE events down -> reconnecting -> up on the session's
    event path, both said, and the turn after it answered (real VAD, wake word and Piper)."""
    from agent.common.phrases import device_line
    from agent.identity.gate import CameraFace
    from agent.listen.sources import FileSource
    from agent.session.runner import Parts, SessionRunner, live_devices
    from agent.session.scripted import silence, synth
    from agent.session.stages import make_vad, make_wake
    from agent.speak.tts import PiperTTS
    from tests.fakes import FakeASR, FakeController, FakeGate, compose, free_port, types
    from tools import ToolContext
    from tools.vision.camera import CameraStage

    port = free_port()
    servers = [MjpegServer(port, jpegs).start()]
    feed = CameraFace(servers[0].url)
    gate = FakeGate()
    gate.feed = feed  # type: ignore[assignment]
    tts = PiperTTS(settings.tts, settings.models_dir)
    audio = np.concatenate([silence(12.0), compose(synth(tts, "Hey Jarvis."), "spk1_snt4.wav")])
    turns, voiced = make_vad(settings)
    parts = Parts(source=FileSource(audio, frame_ms=settings.vad.frame_ms, realtime=True), turns=turns,
                  voiced=voiced, wake=make_wake(settings), gate=gate, asr=FakeASR(["what time is it"]),
                  controller=FakeController(["It is noon."]), tts=tts, throttle=False, face_checks=False,
                  tool_context=ToolContext())
    assert live_devices(parts) == [feed.source.reconnect]
    stage = CameraStage(Counter(), feed.source).start()  # type: ignore[arg-type]

    def outage() -> None:
        time.sleep(1.0)
        servers[0].kill()
        wait_for(lambda: not feed.source.reconnect.up, 20, "the camera reported down")
        time.sleep(1.5)  # past the first reopen attempt
        servers.append(MjpegServer(port, jpegs).start())

    t = threading.Thread(target=outage, daemon=True)
    t.start()
    try:
        events = SessionRunner(settings, parts).run(max_wall_s=90)
    finally:
        t.join(30)
        stage.stop()
        servers[-1].kill()
    device = [(e["device"], e["state"]) for e in events if e["type"] == "device"]
    assert device == [("camera", "down"), ("camera", "reconnecting"), ("camera", "up")], device
    notices = [e["text"] for e in events if e["type"] == "notice"]
    assert notices == [device_line("camera", DOWN), device_line("camera", UP)] == \
        ["I've lost the camera; I'll keep trying.", "The camera is back."]
    kinds = types(events)
    assert kinds.index("device") < kinds.index("wake") < kinds.index("reply") and "error" not in kinds
    assert not feed.source.reconnect.listeners  # the session unhooked itself


def test_files_still_end_and_a_frame_range_loops():
    if not CLIP.is_file():
        pytest.skip("shared testdata missing")
    from tools.vision.capture import open_source

    once = open_source(CLIP)
    n = 0
    while once.read() is not None:  # a file ends at EOF: no reconnecting
        n += 1
    once.close()
    assert once.reconnect is None and n > 200
    part = open_source(CLIP, loop=True, frames=(81, 91))
    frames = [part.read() for _ in range(25)]
    part.close()
    assert all(f is not None for f in frames) and np.array_equal(frames[0], frames[10])  # 81..90, again


# -- the microphone: a stream that dies mid-stream (fake PortAudio stream) -----------------------
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
