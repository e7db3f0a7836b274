"""A live camera that goes away and comes back: a real MJPEG-over-HTTP camera killed and restarted
mid-stream, under OpenCV, the camera stage and a real-time session; files still end."""
from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import wait_for
from tools.common.devices import Backoff, DeviceState, DeviceStatus

ROOT = Path(__file__).resolve().parent.parent
CLIP = (ROOT / "../shared/testdata/faces/probe/short_hamilton_clip.mp4").resolve()
DOWN, RECONNECTING, UP = DeviceState.DOWN, DeviceState.RECONNECTING, DeviceState.UP


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
