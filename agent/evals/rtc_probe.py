"""A scripted browser stand-in for the live session: an aiortc peer that streams a recording and a video
to ``POST /api/rtc/offer`` and records what comes back (events, perception frames, reply audio).

The recording is composed from real material the way the demo composes its conversation: a Piper
"Hey Jarvis.", then a shared test recording (the enrolled user's question, or an impostor's), then
silence while the assistant answers. ``enroll_lin`` enrols the shared Hamilton clip's Lin-Manuel
Miranda (face) with the spk1 recordings (voice), the profile the clip unlocks.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tools.common.pcm import rms, to_float, to_int16
from agent.common.audio_io import SAMPLE_RATE, load_audio, write_wav
from agent.common.config import Settings

USER = "lin"
CLIP = ("faces", "probe", "short_hamilton_clip.mp4")
# The clip's part with Lin in view the whole time (frames ~108-215, seconds): the whole clip looped has
# 4.7 s without a face at each seam, where a session waiting for its answer locks ("face gone")
IN_VIEW = (3.6, 7.2)


def enroll_lin(settings: Settings) -> None:
    """Profile ``lin``: face lin_manuel_miranda, voice spk1_snt1-3 (in ``settings``' profiles folder)."""
    from agent.identity.verify import IdentityChecker

    data = settings.testdata_dir
    faces = sorted((data / "faces" / "enroll" / "lin_manuel_miranda").iterdir())
    IdentityChecker(settings).enroll(USER, [data / "speech" / f"spk1_snt{i}.wav" for i in (1, 2, 3)], faces)


def compose(tts: Any, settings: Settings, speaker: str = "spk1", sentence: int = 4, lead_s: float = 2.0,
            tail_s: float = 14.0) -> np.ndarray:
    """Silence, "Hey Jarvis." (Piper), a shared recording of ``speaker``, then ``tail_s`` of silence."""
    from agent.app.demo import WAKE_TEXT
    from agent.session.scripted import silence, synth
    from agent.evals.wake_eval import level

    said = level(load_audio(settings.testdata_dir / "speech" / f"{speaker}_snt{sentence}.wav"))
    return np.concatenate([silence(lead_s), synth(tts, WAKE_TEXT), silence(0.8), said, silence(tail_s)])


def write_script(audio: np.ndarray, path: Path, sample_rate: int = SAMPLE_RATE) -> Path:
    from agent.common.audio_io import resample

    return write_wav(path, resample(audio, SAMPLE_RATE, sample_rate) if sample_rate != SAMPLE_RATE else audio,
                     sample_rate)


def looped_script(tts: Any, settings: Settings, clip_s: float, speaker: str = "spk1", sentence: int = 4,
                  face_at_s: float = 7.0, loops: int = 3) -> np.ndarray:
    """For a browser's fake microphone, which loops its file as the fake camera loops the clip: ``loops``
    clip lengths long (so the two stay in step), the command ending ``face_at_s`` into the second loop of
    the clip (where the enrolled face is in view)."""
    from agent.app.demo import WAKE_TEXT
    from agent.session.scripted import silence, synth
    from agent.evals.wake_eval import level

    said = level(load_audio(settings.testdata_dir / "speech" / f"{speaker}_snt{sentence}.wav"))
    turn = np.concatenate([synth(tts, WAKE_TEXT), silence(0.8), said])
    lead = int((clip_s + face_at_s) * SAMPLE_RATE) - len(turn)
    total = int(loops * clip_s * SAMPLE_RATE)
    return np.concatenate([np.zeros(lead, np.float32), turn, np.zeros(total - lead - len(turn), np.float32)])


def clip_y4m(video: str | Path, out: Path, fps: int = 10,
             span: tuple[float, float] | None = None) -> tuple[Path, float]:
    """The clip (or its ``span``, seconds from-to) as raw YUV4MPEG at ``fps`` (a browser's fake camera
    file); returns (path, duration s)."""
    import fractions

    import av

    with av.open(str(video)) as src, av.open(str(out), "w", format="yuv4mpegpipe") as dst:
        stream = src.streams.video[0]
        st = dst.add_stream("rawvideo", rate=fractions.Fraction(fps, 1))
        st.width, st.height, st.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
        n, (first, last) = 0, span or (0.0, float("inf"))
        for frame in src.decode(stream):
            t = float(frame.time or 0.0)
            if t >= last:
                break
            if t - first + 1e-6 < n / fps:
                continue
            f = frame.reformat(format="yuv420p")
            f.pts, f.time_base = n, fractions.Fraction(1, fps)
            for packet in st.encode(f):
                dst.mux(packet)
            n += 1
        for packet in st.encode(None):
            dst.mux(packet)
    return out, n / fps


@dataclass
class ProbeResult:
    """What one client saw: session events, perception frames, reply audio and when things happened."""

    client: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    last_frame: dict[str, Any] | None = None
    reply_s: float = 0.0  # seconds of non-silent reply audio received
    first_reply_audio_at: float | None = None  # monotonic
    started_at: float = 0.0
    error: str | None = None

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["type"] == kind), None)

    def states(self) -> list[str]:
        return states_of(self.events)


def states_of(events: list[dict[str, Any]]) -> list[str]:
    """The session states the events went through, in order (repeats folded)."""
    out: list[str] = []
    for e in events:
        if e.get("state") and (not out or out[-1] != e["state"]):
            out.append(e["state"])
    return out


def post_json(url: str, payload: Any, token: str | None = None, timeout: float = 60.0) -> tuple[int, dict]:
    data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def looped_video(path: str | Path, fps: float = 10.0, size: tuple[int, int] | None = None,
                 span: tuple[float, float] | None = None) -> Any:
    """A video track playing ``path`` (or its ``span``, seconds from-to) in a loop, in real time at ``fps``
    (frames in between skipped, as a slow camera would); ``restart`` plays it from the start. (aiortc's
    MediaPlayer fails at a loop's seam.)"""
    first, last = span or (0.0, float("inf"))
    import fractions

    import av
    from aiortc import VideoStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class Looped(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.container: Any = None
            self.frames: Any = iter(())
            self.clip_t, self.n = 0.0, 0
            self.t0: float | None = None

        def _open(self) -> None:
            if self.container is not None:
                self.container.close()
            self.container = av.open(str(path))
            self.frames, self.clip_t = self.container.decode(video=0), first

        def restart(self) -> None:
            self._open()

        def _at(self) -> Any:
            """The first frame at or after the clip time (decoding forward; the end loops to the start)."""
            while True:
                frame = next(self.frames, None)
                if frame is None or float(frame.time or 0.0) >= last:
                    self._open()
                    continue
                if float(frame.time or 0.0) >= self.clip_t:
                    return frame

        async def recv(self) -> Any:
            if self.t0 is None:
                self.t0 = time.monotonic()
            self.n += 1
            wait = self.t0 + self.n / fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.readyState != "live":
                raise MediaStreamError  # stopped while waiting: the closed container must not be read
            w, h = size or (None, None)
            frame = self._at().reformat(width=w, height=h, format="yuv420p")
            self.clip_t += 1.0 / fps
            frame.pts, frame.time_base = round(self.n * 90_000 / fps), fractions.Fraction(1, 90_000)
            return frame

        def stop(self) -> None:
            super().stop()
            if self.container is not None:
                self.container.close()
                self.container = None

    return Looped()


def script_audio(path: str | Path) -> Any:
    """An audio track: silence until ``start()``, then the recording at ``path``, then silence."""
    import fractions

    import av
    from aiortc.mediastreams import AudioStreamTrack

    pcm = to_int16(load_audio(path))

    class Script(AudioStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.pos: int | None = None

        def start(self) -> None:
            if self.pos is None:
                self.pos = 0

        async def recv(self) -> Any:
            frame = await super().recv()  # paced 20 ms of silence (48 kHz)
            n = SAMPLE_RATE // 50
            out = np.zeros(n, np.int16)
            if self.pos is not None:
                part = pcm[self.pos:self.pos + n]
                out[:len(part)] = part
                self.pos += n
            f = av.AudioFrame.from_ndarray(out.reshape(1, -1), format="s16", layout="mono")
            f.sample_rate, f.pts, f.time_base = SAMPLE_RATE, frame.pts // 3, fractions.Fraction(1, SAMPLE_RATE)
            return f

    return Script()


async def _reply_audio(track: Any, result: ProbeResult) -> None:
    from aiortc.mediastreams import MediaStreamError

    try:
        while True:
            frame = await track.recv()
            pcm = to_float(frame.to_ndarray())
            if rms(pcm) > 0.01:
                result.reply_s += frame.samples / frame.sample_rate
                if result.first_reply_audio_at is None:
                    result.first_reply_audio_at = time.monotonic()
    except (MediaStreamError, asyncio.CancelledError):
        pass


async def probe(base_url: str, audio: str | Path | None, video: str | Path | None = None,
                until: Callable[[ProbeResult], bool] | None = None, timeout_s: float = 90.0,
                token: str | None = None, settings: dict | None = None,
                video_size: tuple[int, int] | None = None, video_span: tuple[float, float] | None = None,
                ) -> ProbeResult:
    """One client from offer to close: stream ``audio`` (WAV) and ``video`` (looped; ``video_span``: only
    that part, seconds), stop when ``until(result)`` holds (checked as events arrive) or after ``timeout_s``."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    result, done = ProbeResult(started_at=time.monotonic()), asyncio.Event()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks = []
    if audio is not None:  # the recording starts when the session says it listens ("ready")
        tracks.append(script_audio(audio))
        pc.addTrack(tracks[-1])
    if video is not None:  # and the clip starts again then, so the face the gate sees is in step
        tracks.append(looped_video(video, size=video_size, span=video_span))
        pc.addTrack(tracks[-1])
    channel = pc.createDataChannel("events")
    tasks: list[asyncio.Task] = []

    @channel.on("message")
    def _message(text: str) -> None:
        m = json.loads(text)
        if m.get("type") == "perception":
            result.frames += 1
            result.last_frame = m
        else:
            result.events.append(m)
        if m.get("type") == "ready":
            for track in tracks:
                (getattr(track, "start", None) or getattr(track, "restart"))()
        if until is not None and until(result):
            done.set()

    @pc.on("track")
    def _track(track: Any) -> None:
        if track.kind == "audio":
            tasks.append(asyncio.ensure_future(_reply_audio(track, result)))

    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"sdp": pc.localDescription.sdp, "type": "offer", **({"settings": settings} if settings else {})}
        status, answer = await asyncio.to_thread(post_json, f"{base_url}/api/rtc/offer", offer, token)
        if status != 200:
            result.error = f"{status}: {answer.get('error')}"
            return result
        result.client = answer["client"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
    finally:
        for t in tasks:
            t.cancel()
        for track in tracks:
            track.stop()
        await pc.close()
    return result
