"""Build and run a whole hands-free session: the stage factories wired to the session thread.

With a face video (or photo) the camera stage runs beside the session on the same
file (``Parts.perception``): replies are styled by the emotion it sees and held
gestures switch modes (reported to the session thread, which sets the mode). It
reads the file on its own, in wall-clock time, while the gate samples it at
stream time, so in fast file mode the two drift apart.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from agent.common.config import Settings
from agent.identity.audio_key import KeyPolicy, PhraseJob, check_phrase
from agent.identity.gate import FaceFeed
from agent.listen.echo import EchoCanceller, RoomEcho
from agent.listen.frontend import FrontEnd
from agent.listen.sources import AudioSource
from agent.listen.vad import TurnDetector
from agent.listen.wakeword import WakeDetector
from agent.session.conductor import Conductor
from agent.session.events import EventType
from agent.session.perception import PerceptionHook, seen_emotion
from agent.session.responses import Hold, Responses
from agent.session.stages import (
    Attachable,
    Busy,
    GestureHit,
    LastVoiced,
    Responder,
    SpeakerCheck,
    Stage,
    Stats,
    job_stage,
    make_out,
    make_source,
    make_vad,
    make_wake,
    source_stage,
    start,
    vad_stage,
    wake_stage,
)
from agent.session.state import Emit, Session
from agent.session.turns import FaceJob, Lanes, TurnPolicy, VoiceJob
from agent.speak.playback import AudioOut, Playback, StreamClock
from agent.speak.reply import ReplyPath
from agent.speak.tts import TTS
from tools import ToolContext
from tools.common.devices import Reconnector

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """Every swappable stage of one session."""

    source: AudioSource
    turns: TurnDetector
    voiced: LastVoiced
    wake: WakeDetector
    gate: SpeakerCheck
    asr: Any  # agent.listen.asr.ASR
    controller: Responder
    tts: TTS
    out: AudioOut | None = None
    aec: EchoCanceller | None = None  # None: from config.yaml (session.echo.aec)
    echo: bool = True  # mix our playback into the input (recordings only)
    throttle: bool = True  # thinking costs no stream time (fast file mode)
    face_checks: bool = True  # look for the face while unlocked
    tool_context: ToolContext = field(default_factory=ToolContext)
    perception: PerceptionHook | None = None  # camera stage run for the session (sets tool_context.perception)


def build_parts(settings: Settings, audio: str | np.ndarray | Iterable | None = None, video: str | None = None,
                face: str | None = None, live: bool = False, realtime: bool = False, assistant: Any = None,
                gate: Any = None, feed: Any = None, camera: str | None = None, checker: Any = None) -> Parts:
    """Stages from config.yaml: file or mic source, WAV or speaker output, the real models.

    ``feed``: the face feed, already opened (``make_face_feed``, so a bad --video/--face fails before any model
    loads); else made here from ``video``/``face``. ``checker``: the gate's IdentityChecker (models already
    loaded, e.g. shared by the server's live sessions); None: the gate loads its own.
    """
    from agent.identity.gate import make_face_feed
    from agent.session.assistant import Assistant

    feed = feed if feed is not None or gate is not None else make_face_feed(settings, video, face, live, camera)
    try:
        return _parts(settings, audio, live, realtime, assistant or Assistant(settings), gate, feed, checker)
    except BaseException:
        close_feed(feed)  # a camera opened for this session must not stay open
        raise


def close_feed(feed: FaceFeed | None) -> None:
    if feed is not None:
        feed.close()


def _parts(settings: Settings, audio: Any, live: bool, realtime: bool, assistant: Any, gate: Any,
           feed: Any, checker: Any = None) -> Parts:
    from agent.identity.gate import IdentityGate

    turns, voiced = make_vad(settings)
    perception = None
    if gate is None:
        from agent.identity.face_sync import sync_configured

        sync_configured(settings)  # session.face.sync_dir: enrol/retrain before the gate and camera read profiles
        realtime = realtime or feed.kind == "camera"  # a camera runs on the wall clock: so must the audio
        gate = IdentityGate(settings, feed, checker)
        gate.warm_up()
        face_checks = settings.identity.require_face and not feed.still and feed.kind != "none"
        perception = session_perception(settings, feed, assistant.tool_context)
    else:
        face_checks = False
    return Parts(source=make_source(settings, audio, live, realtime), turns=turns, voiced=voiced,
                 wake=make_wake(settings), gate=gate, asr=assistant.asr, controller=assistant.controller,
                 tts=assistant.tts, out=make_out(settings, live), echo=not live, throttle=not (live or realtime),
                 face_checks=face_checks, tool_context=assistant.tool_context, perception=perception)


def session_perception(settings: Settings, feed: Any, ctx: ToolContext) -> PerceptionHook | None:
    """A camera stage with gesture modes (and mapping) on the face feed: the live camera it shares with
    the gate, or its file (a video plays once); None without a feed."""
    if feed.kind == "camera":
        return PerceptionHook(settings, ctx, source=feed.source, gestures=True, mapping=True)
    path = feed.path
    if path is None:
        return None
    still = feed.kind == "image"
    return PerceptionHook(settings, ctx, image=str(path) if still else None, video=None if still else str(path),
                          loop=False, gestures=True, mapping=not still)


def live_devices(p: Parts) -> list[Reconnector]:
    """The reconnectors of a session's live devices: the microphone, the camera (the gate and the stage
    share one), each once; files and stills have none."""
    frames = [p.gate.feed.source if p.gate.feed else None, p.perception.source if p.perception else None]
    found = [p.source.reconnect, *(f.reconnect for f in frames if f is not None)]
    return list({id(r): r for r in found if r is not None}.values())


def _transcribe(asr: Any) -> Callable[[Any], str]:
    return lambda utt: asr.transcribe(utt.audio).text


def _check(gate: SpeakerCheck, hold: Hold) -> Callable[[Any], Any]:
    def run(job: Any) -> Any:
        with hold:  # the camera stage slows down while the check runs
            return _one_check(gate, job)
    return run


def _one_check(gate: SpeakerCheck, job: Any) -> Any:
    if isinstance(job, FaceJob):
        return gate.face_present(job.t)
    if isinstance(job, VoiceJob):
        return gate.same_voice(job.utt.audio, job.user)
    if isinstance(job, PhraseJob):  # the audio key (agent.session.key_steps): only with the real gate
        return check_phrase(gate.checker, job, gate.cfg)  # type: ignore[attr-defined]
    return gate.check(job.utt.audio, job.utt.end)


class SessionRunner:
    """Wires the stage threads and runs until the stream ends (or ``stop``)."""

    def __init__(self, settings: Settings, parts: Parts, run_dir: Path | None = None, emit: Emit | None = None,
                 queue_size: int = 4, emotion: str | None = None, hold: Hold | None = None) -> None:
        """``emotion``: style every reply as if the camera saw it (benchmarks); None: the camera's.
        ``hold``: shared by sessions on one machine (the server's live clients), so any session's check
        or reply slows every camera stage; None: this session's own."""
        self.settings, self.parts, self.run_dir, self.emotion = settings, parts, run_dir, emotion
        cfg = settings.session
        self.stop = threading.Event()
        self.stats = Stats()
        self.clock = StreamClock(parts.source.sample_rate)
        self.playback = Playback(self.clock, cfg.echo.tail_ms / 1000)
        self.session = Session(cfg, emit)
        self.busy = Busy(self.clock)
        self.q: dict[str, queue.Queue[Any]] = {name: queue.Queue(maxsize=queue_size)
                                               for name in ("vad", "wake")}  # frames: bounded
        self.lanes = Lanes()  # the session thread's queues: events in, jobs out
        self.front = FrontEnd.from_settings(settings, parts.turns, parts.voiced, parts.source.sample_rate, parts.aec)
        self.hold = hold or Hold()  # a gate check or a reply is running: the camera stage slows down
        self.responses = Responses(ReplyPath(parts.controller, parts.tts), self.playback, parts.out, run_dir,
                                   self.stats, self.hold)
        if isinstance(parts.source, Attachable):  # scripted sources listen for the assistant
            parts.source.attach(self)

    def run(self, max_wall_s: float | None = None) -> list[dict[str, Any]]:
        p, q, cfg = self.parts, self.q, self.settings.session
        devices = live_devices(p)
        for reconnect in devices:  # a live camera or microphone lost and back: DEVICE events, said
            reconnect.listeners.append(self.lanes.hub.put)
        if p.perception is not None:
            self._start_perception(p.perception, self.lanes.hub)
        listener = self.session.mode_changed
        p.tool_context.listeners.append(listener)
        lanes = self.lanes
        conductor = Conductor(self.session, lanes, self.playback, self.busy, TurnPolicy.from_settings(cfg, p.face_checks),
                              self.responses, self.stop,
                              emotion_of=self._emotion_of(),
                              key=KeyPolicy.from_settings(self.settings), ctx=p.tool_context)
        room = RoomEcho.for_session(cfg.echo, self.clock.sample_rate) if p.echo and cfg.echo.gain > 0 else None  # recordings
        if p.gate.feed is not None:  # a live camera: stream time 0 is now on its clock
            p.gate.feed.sync(time.monotonic())
        t0 = time.perf_counter()
        threads = [
            start(Stage.SOURCE.value, source_stage, p.source, q["vad"], self.clock, self.playback, self.busy,
                  self.stop, room, p.throttle),
            start(Stage.VAD.value, vad_stage, q["vad"], q["wake"], self.front,
                  self.stats, self.stop),
            start(Stage.WAKE.value, wake_stage, q["wake"], lanes.hub, p.wake, self.stats, self.stop),
            start(Stage.VERIFY.value, job_stage, Stage.VERIFY, lanes.gate, lanes.hub, _check(p.gate, self.hold), self.stats,
                  self.stop),
            start(Stage.ASR.value, job_stage, Stage.ASR, lanes.asr, lanes.hub, _transcribe(p.asr), self.stats,
                  self.stop),
            start(Stage.REPLY.value, job_stage, Stage.REPLY, lanes.speak, lanes.hub, self.responses,
                  self.stats, self.stop),
        ]
        session_thread = start("session", conductor.run)
        try:
            while session_thread.is_alive():
                session_thread.join(0.2)
                if max_wall_s is not None and time.perf_counter() - t0 > max_wall_s:
                    self.session.event(self.clock.now, EventType.ERROR, stage="session", message="wall-time limit reached")
                    break
        except KeyboardInterrupt:
            self.session.event(self.clock.now, EventType.ERROR, stage="session", message="interrupted")
        finally:
            self.stop.set()
            self.responses.interrupt()
            p.tool_context.listeners.remove(listener)
            for reconnect in devices:
                reconnect.listeners.remove(self.lanes.hub.put)
            for t in threads:
                t.join(1.0)
            if p.perception is not None:
                p.perception.__exit__(None, None, None)
        self.session.lock(self.clock.now, "end of session")
        self.session.event(self.clock.now, EventType.STATS, stream_s=round(self.clock.now, 3),
                           wall_s=round(time.perf_counter() - t0, 3), stages=self.stats.summary())
        return self.session.events

    def affect(self) -> Any:
        """The text-emotion model for the reply style, loaded before the first turn (tools/affect/)."""
        from tools.affect.service import Affect

        affect = Affect.shared(self.settings.affect, self.settings.identity.min_speech_s)
        _ = affect.text_model
        return affect

    def _emotion_of(self) -> Callable[..., str | None]:
        """The reply style's emotion (optionally given the turn's text): fixed, or the camera fused with the words."""
        if self.emotion is not None:
            fixed = self.emotion
            return lambda text=None: fixed
        return partial(seen_emotion, self.parts.tool_context, affect=self.affect())

    def _start_perception(self, hook: PerceptionHook, hub: queue.Queue) -> None:
        """Start the camera stage; its held gestures go to the session thread as ``GestureHit``."""
        if hook.gestures is not None:
            hook.gestures.listeners.append(lambda e: hub.put(GestureHit(e["gesture"], e["action"], e["mode"])))
        hook.__enter__()
        if hook.stage is not None:
            hook.stage.hold = self.hold
