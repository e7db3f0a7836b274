"""Streaming audio pipeline: source -> VAD -> wake word -> speaker check -> ASR -> controller -> TTS -> sink.

In the style of speech-to-speech: one thread per stage, queues between them,
one shared stop event, typed frames and events. Audio frames flow source -> VAD
-> wake; their events (in stream order) go to the session thread
(agent/session/conductor.py), which hands jobs to the verify, ASR and controller stages.
Each stage is built by a small factory from config.yaml, so it can be swapped
(file or mic source, WAV or speaker sink, fakes in tests).

Stream time is the clock of the source (see agent/speak/playback.py). Without
``realtime`` a recording is read as fast as the stages keep up, and the source
waits while the assistant thinks: thinking costs no stream time, our own
playback does -- deterministic turn-taking with the real models.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, cast, runtime_checkable

import numpy as np

from agent.common.config import Settings
from agent.listen.echo import RoomEcho
from agent.listen.frontend import FrontEnd
from agent.listen.sources import AudioSource, FileSource, MicSource
from agent.listen.vad import DualVAD, FrameClassifier, TurnDetector
from agent.listen.wakeword import WakeDetector, WakeWordDetector
from agent.speak.playback import AudioOut, Playback, SpeakerOut, StreamClock
from agent.speak.reply import Responder  # noqa: F401  (the controller stage's part)
from tools.common.devices import Backoff
from tools.common.pcm import to_float, to_int16

if TYPE_CHECKING:
    from agent.identity.gate import FaceFeed

log = logging.getLogger(__name__)
END = object()  # end of the audio stream


class Stage(str, Enum):
    SOURCE = "source"
    AEC = "aec"
    VAD = "vad"
    WAKE = "wake"
    VERIFY = "verify"
    ASR = "asr"
    REPLY = "reply"  # controller -> TTS -> playback (agent/speak/reply.py)


# -- frames and events -------------------------------------------------------------------
@dataclass(frozen=True)
class AudioFrame:
    t: float  # stream time of the first sample
    pcm: np.ndarray  # int16 mic samples (echo included until the VAD stage cancels it)
    reference: np.ndarray  # what the speaker played meanwhile (float, 16 kHz)


@dataclass(frozen=True)
class SpeechStarted:
    t: float


@dataclass(frozen=True)
class Utterance:
    start: float  # stream time of the first kept sample (pre-roll included)
    end: float  # end of speech
    audio: np.ndarray = field(repr=False)
    id: int = 0


@dataclass(frozen=True)
class Pause(Utterance):
    """A pause inside the turn ``id``: the audio so far (``end``: its end of speech)."""


@dataclass(frozen=True)
class WakeHit:
    t: float
    score: float
    phrase: str


@dataclass(frozen=True)
class BargeIn:
    t: float


@dataclass(frozen=True)
class Tick:
    t: float


@dataclass(frozen=True)
class GestureHit:
    """A held hand gesture seen by the camera stage, reported; the session thread applies its mode (None: none)."""

    gesture: str
    action: str
    mode: str | None


@dataclass(frozen=True)
class StageError:
    """A stream stage (source, VAD, wake) died; the session logs it and ends with the stream."""

    stage: str
    message: str


@dataclass(frozen=True)
class StageResult:
    """What a job stage hands back: ``value`` or ``error``."""

    stage: Stage
    job: Any
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


# -- swappable parts -----------------------------------------------------------------------
class SpeakerCheck(Protocol):
    """The identity gate (agent.identity.gate.IdentityGate): command audio + face at stream time ``t``."""

    feed: FaceFeed | None  # what the face check looks at (None: no face check)

    def check(self, audio: np.ndarray, t: float) -> Any: ...
    def face_present(self, t: float) -> bool: ...
    def same_voice(self, audio: np.ndarray, user: str) -> tuple[bool, float | None]: ...


@runtime_checkable
class Attachable(Protocol):
    """A source that watches the session (a scripted conversation waits for the assistant to be quiet)."""

    def attach(self, runner: Any) -> None: ...


class LastVoiced:
    """Wraps a frame classifier and remembers its last answer (barge-in needs per-frame voicing)."""

    def __init__(self, inner: FrameClassifier) -> None:
        self.inner = inner
        self.last = False

    def is_speech(self, frame: np.ndarray, in_speech: bool = False) -> bool:
        self.last = self.inner.is_speech(frame, in_speech)
        return self.last


def make_source(settings: Settings, audio: str | np.ndarray | Iterable | None, live: bool = False,
                realtime: bool = False) -> AudioSource:
    """--audio FILE (or an array/iterable of parts) in file mode; the microphone when live or configured."""
    frame_ms = settings.vad.frame_ms
    if live or (audio is None and settings.session.source == "mic"):
        return MicSource(frame_ms=frame_ms, backoff=Backoff.of(settings.devices), stall_s=settings.devices.mic_stall_s)
    if audio is None:
        raise ValueError("file source needs audio")
    if isinstance(audio, (str, np.ndarray)) or hasattr(audio, "__fspath__"):
        return FileSource(cast(Any, audio), frame_ms=frame_ms, realtime=realtime)
    return cast(AudioSource, audio)  # already an AudioSource (e.g. a scripted conversation)


def make_vad(settings: Settings) -> tuple[TurnDetector, LastVoiced]:
    voiced = LastVoiced(DualVAD(settings.vad))
    return TurnDetector(settings.vad, classifier=voiced), voiced


def make_wake(settings: Settings) -> WakeDetector:
    return WakeWordDetector(settings.wake)


def make_out(settings: Settings, live: bool = False) -> AudioOut | None:
    """Physical output: the loudspeaker when live or ``session.sink: speaker``; None writes WAVs only."""
    return SpeakerOut() if live or settings.session.sink == "speaker" else None


# -- stage threads ---------------------------------------------------------------------------
class Stats:
    """Per-stage processing times (seconds), thread-safe; the last ``window`` of each, and a total count."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.window = window
        self.values: dict[str, collections.deque[float]] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.values.setdefault(name, collections.deque(maxlen=self.window)).append(seconds)
            self.counts[name] = self.counts.get(name, 0) + 1

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            out = {}
            for k, window in self.values.items():
                v = sorted(window)
                out[k] = {"median_ms": round(1000 * statistics.median(v), 2),
                          "p90_ms": round(1000 * v[min(len(v) - 1, int(0.9 * len(v)))], 2),
                          "n": self.counts.get(k, len(v))}
            return out


class Busy:
    """Jobs in flight; in fast file mode the source waits on it (thinking costs no stream time)."""

    def __init__(self, clock: StreamClock) -> None:
        self.clock = clock
        self.n = 0

    def add(self, k: int = 1) -> None:
        with self.clock.cond:
            self.n = max(0, self.n + k)
            self.clock.cond.notify_all()

    def __bool__(self) -> bool:
        return self.n > 0


def source_stage(source: AudioSource, out: queue.Queue, clock: StreamClock, playback: Playback, busy: Busy,
                 stop: threading.Event, echo: RoomEcho | None, throttle: bool, max_tail_s: float = 300.0) -> None:
    """Frames from the source, plus the echo of our own playback (``echo``: recordings only).

    After the recording ends, silence follows while the assistant is still busy or talking.
    """
    def release(pcm: np.ndarray) -> None:
        if throttle:
            with clock.cond:
                while busy and not playback.ahead() and not stop.is_set():
                    clock.cond.wait(0.05)
        ref = playback.segment(clock.samples, len(pcm))
        if echo is not None:  # every frame: the room's tail outlasts the playback
            pcm = to_int16(to_float(pcm) + echo(ref))
        frame = AudioFrame(clock.now, pcm, ref)
        clock.advance(len(pcm))
        out.put(frame)

    try:
        n = 0
        for pcm in source:
            if stop.is_set():
                break
            n = len(pcm)
            release(pcm)
        silence = np.zeros(n or 480, np.int16)
        if throttle:  # a recording: trailing silence closes the last utterance, then wait for the replies
            for _ in range(int(1.5 * clock.sample_rate) // len(silence)):
                release(silence)
            tail_end = clock.now + max_tail_s
            while not stop.is_set() and (busy or playback.ahead()) and clock.now < tail_end:
                release(silence)
    except Exception as e:  # the stream ends here; the session logs the error and finishes
        _put(out, _failed(Stage.SOURCE, e), stop)
    finally:
        playback.closed.set()
        _put(out, END, stop)


def vad_stage(inp: queue.Queue, out: queue.Queue, front: FrontEnd, stats: Stats, stop: threading.Event) -> None:
    """Echo cancelled, then speech start/end (utterances) and barge-in over our own playback.

    Frames go on in order, echo-cancelled: wake word and ASR hear the user, not our reply.
    """
    try:
        _vad_loop(inp, out, front, stats, stop)
    except Exception as e:  # report, end the stream downstream, keep the source unblocked
        _put(out, _failed(Stage.VAD, e), stop)
        _put(out, END, stop)
        _drain(inp, stop)


def _vad_loop(inp: queue.Queue, out: queue.Queue, front: FrontEnd, stats: Stats, stop: threading.Event) -> None:
    ids = 0
    while not stop.is_set():
        frame = _get(inp, stop)
        if frame is None:
            continue
        if frame is END:
            last = front.turns.flush()
            if last is not None:
                out.put(Utterance(last.start_s, last.time_s, last.audio, ids + 1))
            out.put(END)
            return
        if not isinstance(frame, AudioFrame):  # e.g. a StageError from the source
            out.put(frame)
            continue
        step = front.process(frame.pcm, frame.reference)
        frame, event = dataclasses.replace(frame, pcm=step.pcm), step.event
        stats.add(Stage.AEC.value, step.aec_s)
        stats.add(Stage.VAD.value, step.vad_s)
        if step.barge_in:
            out.put(BargeIn(frame.t))
        out.put(frame)
        if event is not None and event.type == "speech_start":
            out.put(SpeechStarted(event.time_s))
        elif event is not None and event.type == "speech_pause":
            out.put(Pause(event.start_s, event.time_s, event.audio, ids + 1))
        elif event is not None:
            ids += 1
            out.put(Utterance(event.start_s, event.time_s, event.audio, ids))


def wake_stage(inp: queue.Queue, hub: queue.Queue, wake: WakeDetector, stats: Stats, stop: threading.Event,
               tick_s: float = 0.5) -> None:
    """Wake word over every frame; VAD events forwarded; a Tick every ``tick_s`` of stream time."""
    try:
        _wake_loop(inp, hub, wake, stats, stop, tick_s)
    except Exception as e:  # report, end the stream for the session, keep the VAD stage unblocked
        hub.put(_failed(Stage.WAKE, e))
        hub.put(END)
        _drain(inp, stop)


def _wake_loop(inp: queue.Queue, hub: queue.Queue, wake: WakeDetector, stats: Stats, stop: threading.Event,
               tick_s: float) -> None:
    next_tick = tick_s
    while not stop.is_set():
        item = _get(inp, stop)
        if item is None:
            continue
        if item is END:
            hub.put(END)
            return
        if not isinstance(item, AudioFrame):
            hub.put(item)
            continue
        t0 = time.perf_counter()
        hit = wake.process(item.pcm)
        stats.add(Stage.WAKE.value, time.perf_counter() - t0)
        if hit is not None:
            hub.put(WakeHit(hit.time_s, hit.score, hit.phrase))
        if item.t >= next_tick:
            next_tick = item.t + tick_s
            hub.put(Tick(item.t))


def job_stage(stage: Stage, inp: queue.Queue, hub: queue.Queue, fn: Callable[[Any], Any], stats: Stats,
              stop: threading.Event) -> None:
    """Generic worker: job in, StageResult out; an exception is reported, never fatal."""
    while not stop.is_set():
        job = _get(inp, stop)
        if job is None:
            continue
        if job is END:
            return
        t0 = time.perf_counter()
        try:
            res = StageResult(stage, job, value=fn(job))
        except Exception as e:  # a failing stage must not take the session down
            log.warning("%s stage failed: %s", stage.value, e)
            res = StageResult(stage, job, error=f"{type(e).__name__}: {e}")
        res = StageResult(res.stage, res.job, res.value, res.error, time.perf_counter() - t0)
        stats.add(stage.value, res.seconds)
        hub.put(res)


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    """Next item, or None after 0.1 s (so a stage notices ``stop``)."""
    try:
        return q.get(timeout=0.1)
    except queue.Empty:
        return None


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Put ``item``, giving up once ``stop`` is set (the consumer may be gone)."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return


def _drain(q: queue.Queue, stop: threading.Event) -> None:
    """Consume and drop items until END or ``stop`` (after a stage failed: the producer must not block)."""
    while not stop.is_set():
        if _get(q, stop) is END:
            return


def _failed(stage: Stage, e: BaseException) -> StageError:
    log.error("%s stage stopped: %s: %s", stage.value, type(e).__name__, e, exc_info=e)
    return StageError(stage.value, f"{type(e).__name__}: {e}")


def start(name: str, target: Callable, *args: Any) -> threading.Thread:
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t
