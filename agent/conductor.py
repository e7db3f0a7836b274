"""The session thread: applies agent.session's state machine to the pipeline's events.

Turn-taking and self-trigger rules (kept simple on purpose):

* While our reply plays (plus ``echo_tail_ms``), wake detections are ignored and
  utterances that overlap our playback never start a turn: they are our own echo.
* Barge-in is the one exception: VAD speech whose mic level is clearly above the
  expected echo (BargeInDetector) cancels playback and the rest of the reply; the
  utterance it belongs to becomes the next turn.
* While not unlocked the controller is never called (a refusal is spoken by TTS
  alone). ASR of the command runs speculatively alongside the speaker check and
  its transcript is dropped unless the check accepts.
* On unlock the user's profile preferences (agent.preferences) apply to the
  user's jobs: the first one opens with a greeting by ``address_as`` (said while
  the controller thinks), replies get the ``reply_length`` sentence cap and the
  user's Piper voice when it is installed.
* With a camera stage beside the session, each reply is styled by the main face's
  emotion when the user's words were heard (``emotion_of``), and a held gesture
  (``GestureHit``) is logged; a locking mode it selected locks at once, or after
  the reply in progress.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from agent.assistant import SPOKEN_ERRORS
from agent.controller import FALLBACK_FAILED, TurnResult
from agent.errors import ErrorCode, MMChatError
from agent.gate import GateResult
from agent.pipeline import (END, Busy, BargeIn, GestureHit, Responder, SpeechStarted, Stage, StageError, StageResult,
                            Stats, Tick, Utterance, WakeHit)
from agent.playback import AudioOut, Playback, PlaybackSink
from agent.preferences import Preferences
from agent.session import Session, State
from agent.speech_out import SpeechWorker
from agent.tts import TTS

GOODBYE = "Goodbye. I'm locking now."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyJob:
    utt: Utterance


@dataclass(frozen=True)
class FaceJob:
    t: float


@dataclass(frozen=True)
class VoiceJob:
    """A later turn while unlocked: does the speaker still match the unlocked user?"""

    utt: Utterance
    user: str


@dataclass(frozen=True)
class SpeakJob:
    kind: str  # reply (controller) | refusal | goodbye | notice (fixed text, no controller)
    text: str
    heard_at: float  # perf_counter when the user's speech end was seen (voice-to-voice clock)
    emotion: str | None = None  # the user's emotion seen by the camera (None: the controller's default)
    prefs: Preferences | None = None  # the unlocked user's preferences (None: defaults)
    greeting: str | None = None  # said before the job's own text (first job after an unlock)


@dataclass
class Spoken:
    kind: str
    text: str
    result: TurnResult | None
    audio: str | None
    first_audio_s: float | None
    greeting: str | None = None  # the greeting heard before ``text``


class Responses:
    """The controller stage's job function: controller (or fixed text) -> SpeechWorker -> playback."""

    def __init__(self, controller: Responder, tts: TTS, playback: Playback, out: AudioOut | None,
                 run_dir: Path | None, stats: Stats) -> None:
        self.controller, self.tts, self.playback, self.out = controller, tts, playback, out
        self.run_dir, self.stats = run_dir, stats
        self.current: PlaybackSink | None = None
        self.n = 0
        self.voices: dict[str, TTS] = {}  # per-user voices loaded so far (failures map to self.tts)

    def voice(self, prefs: Preferences | None) -> TTS:
        """The user's Piper voice if set, other than the configured one and installed; else the default."""
        name = prefs.voice if prefs else None
        if not name or name == getattr(self.tts, "name", None):
            return self.tts
        if name not in self.voices:
            try:
                self.voices[name] = self.tts.with_voice(name)  # type: ignore[attr-defined]
            except (MMChatError, AttributeError) as e:
                log.warning("voice %r unavailable (%s); using the configured voice", name, e)
                self.voices[name] = self.tts
        return self.voices[name]

    def limit(self, job: SpeakJob) -> dict[str, int]:
        """``max_sentences`` for ``respond`` from the user's reply length (empty: the style's cap)."""
        extra = job.prefs.extra_sentences if job.prefs else 0
        return {"max_sentences": self.controller.style_cap(job.emotion) + extra} if extra else {}

    def __call__(self, job: SpeakJob) -> Spoken:
        sink = PlaybackSink(self.playback, threading.Event(), self.out)
        self.current = sink
        worker = SpeechWorker(self.voice(job.prefs), sink, sink.cancel)
        if job.greeting:
            worker.say(job.greeting)
        result = None
        if job.kind == "reply":
            try:
                result = self.controller.respond(job.text, job.emotion, on_sentence=worker.say, cancel=sink.cancel,
                                                 **self.limit(job))
            except MMChatError as e:
                result = TurnResult(text=job.text, error=str(e))
                result.reply = SPOKEN_ERRORS.get(e.code, FALLBACK_FAILED)
                worker.say(result.reply)
        else:
            worker.say(job.text)
        spoken = worker.finish()
        self.current = None
        greeted = bool(job.greeting) and spoken[:1] == [job.greeting]
        spoken = spoken[1:] if greeted else spoken
        starts = worker.started[1:] if job.greeting else worker.started  # the job's own first audio
        first = starts[0] - job.heard_at if starts else None
        if first is not None and job.kind == "reply":
            self.stats.add("voice_to_voice", first)
        text = job.text if result is None else result.reply
        if sink.cancel.is_set():
            text = " ".join(spoken)
            if result is not None:
                result.reply, result.interrupted = text, True
        audio = None
        if self.run_dir is not None and sink.record.chunks:
            self.n += 1
            audio = str(sink.record.save(self.run_dir / f"{self.n:02d}-{job.kind}.wav"))
        return Spoken(job.kind, text, result, audio, first, job.greeting if greeted else None)

    def interrupt(self) -> bool:
        sink = self.current
        if sink is None or sink.cancel.is_set():
            return False
        sink.interrupt()
        return True


class Conductor:
    """Consumes the hub queue until the end of the stream and all jobs are done."""

    def __init__(self, session: Session, hub: queue.Queue, playback: Playback, busy: Busy, gate_q: queue.Queue,
                 asr_q: queue.Queue, speak_q: queue.Queue, responses: Responses, face_checks: bool,
                 lookback_s: float, min_command_s: float, face_check_s: float, stop: threading.Event,
                 emotion_of: Callable[[str], str | None] | None = None, reverify_min_s: float | None = None) -> None:
        self.s, self.hub, self.playback, self.busy = session, hub, playback, busy
        self.gate_q, self.asr_q, self.speak_q, self.responses = gate_q, asr_q, speak_q, responses
        self.face_checks, self.face_check_s = face_checks, face_check_s
        self.lookback_s, self.min_command_s = lookback_s, min_command_s
        self.stop, self.emotion_of = stop, emotion_of
        self.reverify_min_s = reverify_min_s  # None: later turns are not voice-checked
        self.wake_t = 0.0
        self.barge_t: float | None = None
        self.pending: dict[int, dict[str, Any]] = {}  # utterance id -> {verify, transcript, heard_at}
        self.prefs: Preferences | None = None  # of the unlocked user
        self.greeting: str | None = None  # due on the first job after an unlock
        self.goodbye = False
        self.last_face = -1e9
        self.ended = False

    @property
    def now(self) -> float:
        return self.playback.clock.now

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                item = self.hub.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.handle(item)
            except Exception as e:  # bad input or a bug in one event must not end the session
                self.s.event(self.now, "error", stage="session", message=f"{type(e).__name__}: {e}")
            if self.ended and not self.busy:
                return

    def handle(self, item: Any) -> None:
        if item is END:
            self.ended = True
        elif isinstance(item, WakeHit):
            self.on_wake(item)
        elif isinstance(item, SpeechStarted):
            if self.s.active and not self.playback.overlaps(item.t, item.t) and self.reverify_min_s is None:
                self.s.heard(item.t)  # (re-verifying: only speech that passes the check counts)
            elif self.s.state is State.VERIFYING:
                self.s.command_started(item.t)
        elif isinstance(item, BargeIn):
            if self.responses.interrupt():
                self.barge_t = item.t
                self.s.event(item.t, "barge_in")
        elif isinstance(item, Utterance):
            self.on_utterance(item)
        elif isinstance(item, Tick):
            self.on_tick(item.t)
        elif isinstance(item, GestureHit):
            self.on_gesture(item)
        elif isinstance(item, StageError):  # a stream stage died: END follows, the session finishes its jobs
            self.s.event(self.now, "error", stage=item.stage, message=item.message)
        elif isinstance(item, StageResult):
            try:
                self.on_result(item)  # queue any follow-up job first: busy never dips to 0 in between
            finally:
                if not isinstance(item.job, FaceJob):
                    self.busy.add(-1)

    # -- audio events -----------------------------------------------------------------------
    def on_wake(self, hit: WakeHit) -> None:
        if self.playback.overlaps(hit.t - 1.5, hit.t):
            self.s.event(hit.t, "ignored", what="wake", reason="during our own playback", score=round(hit.score, 3))
            return
        if self.s.wake(hit.t, hit.score, hit.phrase):
            self.wake_t = hit.t

    def on_utterance(self, u: Utterance) -> None:
        barged = self.barge_t is not None and u.start - 0.5 <= self.barge_t <= u.end
        if self.playback.overlaps(u.start + 0.3, u.end) and not barged:  # +0.3: pre-roll is not speech
            self.s.event(u.end, "ignored", what="speech", reason="overlaps our own playback",
                         seconds=round(u.end - u.start, 2))
            return
        if self.s.state is State.VERIFYING:
            if u.end - self.wake_t < self.min_command_s:
                return  # the wake phrase alone: wait for the command
            cut = max(0, int((self.wake_t - self.lookback_s - u.start) * 16000))
            u = Utterance(u.start + cut / 16000, u.end, u.audio[cut:], u.id)
            self.pending[u.id] = {"heard_at": time.perf_counter()}
            self.busy.add(2)
            self.gate_q.put(VerifyJob(u))
            self.asr_q.put(u)
        elif self.s.active:
            self.pending[u.id] = {"heard_at": time.perf_counter()}
            if self.reverify_min_s is not None and u.end - u.start >= self.reverify_min_s and self.s.user:
                self.busy.add(2)
                self.gate_q.put(VoiceJob(u, self.s.user))  # checked beside ASR: no added latency
            else:  # too short to judge a voice by (or not re-verifying): the unlocked user's
                self.s.heard(u.end)
                self.pending[u.id]["verify"] = "accept"
                self.busy.add()
            self.asr_q.put(u)

    def on_tick(self, t: float) -> None:
        self.s.tick(t, busy=bool(self.busy) or self.playback.ahead())
        if self.face_checks and self.s.active and t - self.last_face >= self.face_check_s:
            self.last_face = t
            self.gate_q.put(FaceJob(t))

    def on_gesture(self, g: GestureHit) -> None:
        """Log a held gesture; its locking mode (already set on the ToolContext) applies unless a job runs."""
        t = self.now
        self.s.event(t, "gesture", gesture=g.gesture, action=g.action, mode=g.mode, previous=g.previous)
        if not self.busy:
            self.s.after_reply(t)

    # -- stage results ----------------------------------------------------------------------
    def on_result(self, r: StageResult) -> None:
        if r.stage is Stage.VERIFY and isinstance(r.job, FaceJob):
            if r.error is not None:  # e.g. the camera stopped: said once per check, and counted as no face
                self.s.event(r.job.t, "error", stage="camera", message=r.error)
            self.s.face_seen(r.job.t, r.error is None and bool(r.value))
            return
        if r.stage is Stage.VERIFY and isinstance(r.job, VoiceJob):
            self.on_voice(r)
        elif r.stage is Stage.VERIFY:
            self.on_verified(r)
        elif r.stage is Stage.ASR:
            p = self.pending.setdefault(r.job.id, {"heard_at": time.perf_counter()})
            p["transcript"] = (r.value, r.error)
            self.try_turn()
        elif r.stage is Stage.CONTROLLER:
            self.on_spoken(r)

    def on_verified(self, r: StageResult) -> None:
        u: Utterance = r.job.utt
        res: GateResult = r.value if r.error is None else GateResult(
            "reject", None, f"speaker check failed: {r.error}", "Sorry, I can't unlock: something went wrong "
            "while checking who you are.")
        accepted = self.s.verified(u.end, res.as_event())
        p = self.pending.setdefault(u.id, {"heard_at": time.perf_counter()})
        p["verify"] = "accept" if accepted else "reject"
        if accepted:
            self.prefs = Preferences.of(res.user or "", res.prefs)
            self.greeting = self.prefs.greeting()
        else:
            self.say("refusal", res.spoken, p["heard_at"])
        self.try_turn()

    def on_voice(self, r: StageResult) -> None:
        """A later turn's voice check: another voice is ignored (the session stays unlocked)."""
        u: Utterance = r.job.utt
        if r.error is not None:  # the check itself failed: said, and the turn goes ahead (fail open)
            self.s.event(u.end, "error", stage="verify", message=f"voice re-check failed: {r.error}")
        ok, score = r.value if r.error is None else (True, None)
        p = self.pending.setdefault(u.id, {"heard_at": time.perf_counter()})
        p["verify"] = "accept" if ok else "reject"
        if ok:
            self.s.heard(u.end)  # only the unlocked user's speech keeps the session awake
        else:
            why = f"score {score:.3f}" if score is not None else "no voice profile"
            self.s.event(u.end, "ignored", what="speech", reason=f"not {r.job.user}'s voice ({why})",
                         seconds=round(u.end - u.start, 2))
        self.try_turn()

    def try_turn(self) -> None:
        """Turns whose check and transcript are both in, taken in the order they were spoken."""
        while self.pending:
            first = min(self.pending)  # an earlier utterance still being checked holds the later ones back
            p = self.pending[first]
            if "verify" not in p or "transcript" not in p:
                return
            del self.pending[first]
            self._turn(p)

    def _turn(self, p: dict[str, Any]) -> None:
        if p["verify"] != "accept" or not self.s.active:
            return  # locked: the speculative transcript is dropped unseen
        text, error = p["transcript"]
        t = self.now
        if error or not text:
            self.s.event(t, "error", stage="asr", message=error or "empty transcript")
            self.say("notice", SPOKEN_ERRORS[ErrorCode.NO_SPEECH], p["heard_at"])
            return
        self.s.event(t, "transcript", text=text)
        if self.s.is_goodbye(text):
            self.goodbye = True
            self.say("goodbye", GOODBYE, p["heard_at"])
            return
        self.say("reply", text, p["heard_at"], self.emotion_of(text) if self.emotion_of else None)

    def say(self, kind: str, text: str, heard_at: float, emotion: str | None = None) -> None:
        """Queue a spoken job; while unlocked it carries the user's prefs (and the greeting, once)."""
        prefs = self.prefs if self.s.active else None
        greeting = None
        if prefs is not None and kind != "goodbye":
            greeting, self.greeting = self.greeting, None
        self.busy.add()
        self.speak_q.put(SpeakJob(kind, text, heard_at, emotion, prefs, greeting))

    def on_spoken(self, r: StageResult) -> None:
        t = self.now
        if r.error is not None:
            self.s.event(t, "error", stage="controller", message=r.error)
            return
        sp: Spoken = r.value
        fields: dict[str, Any] = {"text": sp.text, "audio": sp.audio}
        if sp.first_audio_s is not None:
            fields["first_audio_s"] = round(sp.first_audio_s, 3)
        if sp.greeting:
            fields["greeting"] = sp.greeting
        if sp.result is not None:
            for call in sp.result.tool_calls:
                self.s.event(t, "tool_call", **call.as_dict())
            fields.update(emotion=sp.result.emotion, interrupted=sp.result.interrupted, error=sp.result.error,
                          timings={k: round(v, 3) for k, v in sp.result.timings.items()})
        self.s.event(t, "reply" if sp.kind == "reply" else sp.kind, **fields)
        if self.goodbye and sp.kind == "goodbye":
            self.goodbye = False
            self.s.lock(t, "goodbye")
        self.s.after_reply(t)
