"""One browser tab: its peer connection and its own hands-free session.

The session is the one ``main.py --live`` runs (``agent.session.runner``: echo canceller -> VAD ->
wake word -> voice + face gate with liveness -> ASR -> controller -> TTS), built with the browser's
microphone as the audio source, its camera as the face feed and camera stage source, and the reply
track as the loudspeaker. Every session event and a compact perception frame per analysed camera
frame go to the browser on the ``events`` data channel as JSON.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Any

from agent.common.config import Settings
from agent.identity.gate import CameraFace, NoFace
from tools import ToolContext
from tools.common.errors import MMChatError
from tools.vision.camera import RecentFrames, TeeSource

from agent.app.rtc.live import LiveSettings, apply_to_processor, apply_to_session
from agent.app.rtc.tracks import CameraFrames, MicSource, ReplyOut, ReplyTrack, consume

log = logging.getLogger(__name__)
MAX_CHANNEL_BUFFER = 256 * 1024  # perception frames are skipped while the browser reads slower
MESH_STEP = 4  # every 4th of the 478 face-mesh points goes to the page (enough to draw it)


class TrackFace(CameraFace):
    """The face feed of the gate over the browser's camera (a ``CameraFace`` with a track as its device).

    Stream time maps to the camera's clock through the microphone (``MicSource.wall_time``): when the
    session runs behind the browser, a check still looks at the frames seen while those words came.
    """

    def __init__(self, frames: CameraFrames, keep_s: float, stale_s: float,  # noqa: D107
                 mic: MicSource | None = None) -> None:
        self.spec, self.mic, self.stale_s = "the browser camera", mic, stale_s
        self.recent = RecentFrames(keep_s)
        self.source = TeeSource(frames, self.recent.add)
        self.t0 = None

    def wall(self, t: float) -> float | None:
        arrived = self.mic.wall_time(t) if self.mic is not None else None
        return arrived if arrived is not None else super().wall(t)


class LandmarkTap:
    """Wraps the camera stage's face/hand analyser and keeps its last full result (with landmarks)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.last = inner, None

    def analyse(self, frame: Any, t_ms: float | None = None) -> Any:
        self.last = self.inner.analyse(frame, t_ms)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _pts(a: Any, step: int = 1) -> list[list[int]]:
    return [[int(x), int(y)] for x, y in a[::step, :2]] if a is not None else []


def perception_frame(snap: Any, full: Any, mode: str, state: str, fps: float) -> dict[str, Any]:
    """The page's overlay for one analysed frame: faces (box, mesh, emotion, name), hands (landmarks,
    gesture), objects (label, box, track id), the mode and the gate state. Boxes are [x1, y1, x2, y2]
    and points [x, y], in pixels of the analysed frame (``width`` x ``height``)."""
    faces = []
    for i, f in enumerate(snap.faces):
        mesh = full.faces[i].landmarks if full is not None and i < len(full.faces) else None
        faces.append({"box": f["box"], "emotion": f.get("emotion"), "name": f.get("name"),
                      "landmarks": _pts(mesh, MESH_STEP)})
    hands = []
    for i, h in enumerate(snap.hands):
        pts = full.hands[i].landmarks if full is not None and i < len(full.hands) else None
        hands.append({"gesture": h["gesture"], "landmarks": _pts(pts)})
    objects = [{"label": o.label, "box": [int(v) for v in o.box], "id": o.track_id} for o in snap.objects]
    return {"type": "perception", "width": snap.width, "height": snap.height, "faces": faces, "hands": hands,
            "objects": objects, "mode": mode, "state": state, "fps": round(fps, 2)}


class RtcClient:
    """A connected tab: tracks in, reply out, its session in a thread; ``close`` releases everything."""

    def __init__(self, pc: Any, shared: Any, base: Settings, live: LiveSettings) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.pc, self.shared, self.base, self.live = pc, shared, base, live
        self.loop = asyncio.get_running_loop()
        self.mic = MicSource(frame_ms=base.vad.frame_ms, on_start=self._listening)
        self.camera: CameraFrames | None = None
        self.reply = ReplyTrack()
        self.ctx = ToolContext()
        self.channel: Any = None
        self.runner: Any = None
        self.processor: Any = None
        self.tap: LandmarkTap | None = None
        self.started_at = time.monotonic()
        self.analysed = 0
        self.state = "locked"
        self.error: str | None = None
        self._pending: list[str] = []  # messages made before the data channel opened
        self._tasks: list[asyncio.Task] = []
        self._thread: threading.Thread | None = None
        self._closed = asyncio.Event()
        self._live_lock = threading.Lock()

    # -- media ----------------------------------------------------------------------------
    def add_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(consume(track, self.mic)))
        elif track.kind == "video" and self.camera is None:
            self.camera = CameraFrames(self.base.serve.rtc_max_width)
            self._tasks.append(asyncio.ensure_future(consume(track, self.camera)))

    def attach_channel(self, channel: Any) -> None:
        if channel.label != "events":
            return
        self.channel = channel

        @channel.on("open")
        def _flush() -> None:
            self._flush()

        if channel.readyState == "open":
            self._flush()

    # -- messages (any thread) ---------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False, default=str)
        try:
            self.loop.call_soon_threadsafe(self._send, text, message.get("type") == "perception")
        except RuntimeError:  # the loop is gone (server shutting down)
            pass

    def _send(self, text: str, droppable: bool) -> None:
        ch = self.channel
        if ch is None or ch.readyState != "open":
            if not droppable:
                self._pending.append(text)
            return
        if droppable and ch.bufferedAmount > MAX_CHANNEL_BUFFER:
            return
        try:
            ch.send(text)
        except Exception as e:  # noqa: BLE001 - the channel closed under us: the client is going
            log.debug("events channel send failed: %s", e)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for text in pending:
            self._send(text, False)

    def _event(self, e: dict[str, Any]) -> None:
        if e.get("type") in ("unlock", "wake", "lock"):
            self.state = {"unlock": "active", "wake": "verifying", "lock": "locked"}[e["type"]]
        self.send({**e, "state": self.state})

    # -- the session ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"rtc-{self.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from agent.session.runner import SessionRunner, build_parts, close_feed

        try:
            self.shared.load()
            settings = self.live.settings(self.base)
            keep_s = settings.session.face.window_s + 5.0
            feed = (TrackFace(self.camera, keep_s, settings.devices.camera_stale_s, self.mic)
                    if self.camera is not None else NoFace())
            parts = build_parts(settings, audio=self.mic, realtime=True, assistant=self.shared.for_client(self.ctx),
                                feed=feed, checker=self.shared.checker)
            parts.gate, parts.out, parts.echo = self.shared.gate(parts.gate), ReplyOut(self.reply), False
            if parts.perception is not None:
                parts.perception.make_processor = self.shared.processor_factory(self._attach)
            self.runner = SessionRunner(settings, parts, emit=self._event, hold=self.shared.hold)
            if self.mic.closed:  # the tab went away while the session was being built
                close_feed(feed)
                return
            self.runner.run()
        except MMChatError as e:
            self.error = str(e)
            self.send({"type": "error", "stage": "rtc", "message": str(e), "code": e.code.value})
        except Exception as e:  # noqa: BLE001 - this client's session fails; the server and others go on
            log.exception("rtc session %s failed", self.id)
            self.error = f"{type(e).__name__}: {e}"
            self.send({"type": "error", "stage": "rtc", "message": self.error})
        finally:
            self.loop.call_soon_threadsafe(self._closed.set) if not self.loop.is_closed() else None

    def _listening(self) -> None:
        """The session reads the microphone from now on (stream time 0)."""
        self.send({"type": "ready", "t": 0.0, "camera": self.camera is not None, "state": self.state})

    def _attach(self, processor: Any) -> None:
        """The camera stage's processor, before its first frame: landmarks tapped, overlay sent."""
        self.tap = LandmarkTap(processor.analyser) if processor.analyser is not None else None
        if self.tap is not None:
            processor.analyser = self.tap
        apply_to_processor(processor, None, self.live, self.live.settings(self.base))
        processor.listeners.append(self._frame)
        self.processor = processor

    def _frame(self, snap: Any) -> None:
        self.analysed += 1
        fps = self.analysed / max(1e-3, time.monotonic() - self.started_at)
        full = self.tap.last if self.tap is not None else None
        self.send(perception_frame(snap, full, self.ctx.mode, self.state, fps))

    def update(self, changes: Any) -> LiveSettings:
        """Apply live settings (validated whole first); returns the settings now in force."""
        with self._live_lock:
            new = self.live.merged(changes)
            old, self.live = self.live, new
            if self.processor is not None:
                apply_to_processor(self.processor, old, new, new.settings(self.base))
            if self.runner is not None:
                apply_to_session(self.runner.parts, new)
            return new

    def stats(self) -> dict[str, Any]:
        up = max(1e-3, time.monotonic() - self.started_at)
        cam = self.camera
        return {"client": self.id, "state": self.state, "uptime_s": round(up, 2), "analysed": self.analysed,
                "analysed_fps": round(self.analysed / up, 2), "audio_in_s": round(self.mic.received_s, 2),
                "silent_frames": self.mic.silent_frames, "video_frames": cam.received if cam else 0,
                "video_dropped": cam.dropped if cam else 0, "reply_sent_s": round(self.reply.sent_s, 2),
                "camera": cam is not None, "error": self.error}

    # -- the end --------------------------------------------------------------------------
    async def close(self, timeout: float = 10.0) -> None:
        """Stop the session, the tracks and the connection; idempotent."""
        self.mic.close()
        if self.camera is not None:
            self.camera.close()
        if self.runner is not None:
            self.runner.stop.set()
        self.reply.stop()
        for t in self._tasks:
            t.cancel()
        await self.pc.close()
        if self._thread is not None and self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, timeout)
