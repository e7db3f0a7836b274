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

from agent.audio_io import SAMPLE_RATE
from agent.errors import ErrorCode
from agent.gate import GateResult
from agent.pipeline import (END, Busy, BargeIn, GestureHit, Pause, SpeechStarted, Stage, StageError, StageResult,
                            Stats, Tick, Utterance, WakeHit)
from agent.playback import AudioOut, Playback, PlaybackSink
from agent.preferences import Preferences
from agent.reply import SPOKEN_ERRORS, Reply, ReplyJob, ReplyKind, ReplyPath
from agent.key_steps import KeySteps
from agent.session import Session, State

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


class Responses:
    """The controller stage's job function: a ReplyJob through the one reply path into playback."""

    def __init__(self, replies: ReplyPath, playback: Playback, out: AudioOut | None, run_dir: Path | None,
                 stats: Stats, hold: threading.Event | None = None) -> None:
        """``hold``: set while a reply runs (the camera stage slows down to leave the CPU to it)."""
        self.replies, self.playback, self.out, self.hold = replies, playback, out, hold
        self.run_dir, self.stats = run_dir, stats
        self.current: PlaybackSink | None = None
        self.n = 0

    def __call__(self, job: ReplyJob) -> Spoken:
        sink = PlaybackSink(self.playback, threading.Event(), self.out)
        self.current = sink
        if self.hold is not None:
            self.hold.set()
        try:
            reply = self.replies.run(job, sink, sink.cancel)
        finally:
            self.current = None
            if self.hold is not None:
                self.hold.clear()
        if reply.first_audio_s is not None and job.kind is ReplyKind.REPLY:
            self.stats.add("voice_to_voice", reply.first_audio_s)
        audio = None
        if self.run_dir is not None and sink.record.chunks:
            self.n += 1
            audio = str(sink.record.save(self.run_dir / f"{self.n:02d}-{job.kind.value}.wav"))
        return Spoken(reply, audio)

    def interrupt(self) -> bool:
        sink = self.current
        if sink is None or sink.cancel.is_set():
            return False
        sink.interrupt()
        return True


@dataclass(frozen=True)
class Spoken:
    """A reply as the session logs it: what was heard, and where its audio was saved."""

    reply: Reply
    audio: str | None


class Conductor:
    """Consumes the hub queue until the end of the stream and all jobs are done."""

    def __init__(self, session: Session, hub: queue.Queue, playback: Playback, busy: Busy, gate_q: queue.Queue,
                 asr_q: queue.Queue, speak_q: queue.Queue, responses: Responses, face_checks: bool,
                 lookback_s: float, min_command_s: float, face_check_s: float, stop: threading.Event,
                 emotion_of: Callable[[str], str | None] | None = None, reverify_min_s: float | None = None,
                 key: Any = None) -> None:
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
        self.key = None if key is None else KeySteps(self, key)  # passphrase/challenge/lockout (agent.key_steps)

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
        elif isinstance(item, Pause):  # (a Pause is an Utterance so far: test it first)
            self.on_pause(item)
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
        if self.key and self.key.refuse_wake(hit):
            return
        if self.s.wake(hit.t, hit.score, hit.phrase):
            self.wake_t = hit.t

    def _admit(self, u: Utterance, report: bool) -> Utterance | None:
        """The part of ``u`` that may be a turn (cut to the command after a wake word), or None."""
        barged = self.barge_t is not None and u.start - 0.5 <= self.barge_t <= u.end
        if self.playback.overlaps(u.start + 0.3, u.end) and not barged:  # +0.3: pre-roll is not speech
            if report:
                self.s.event(u.end, "ignored", what="speech", reason="overlaps our own playback",
                             seconds=round(u.end - u.start, 2))
            return None
        if self.s.state is State.VERIFYING:
            if u.end - self.wake_t < self.min_command_s:
                return None  # the wake phrase alone: wait for the command
            cut = max(0, int((self.wake_t - self.lookback_s - u.start) * SAMPLE_RATE))
            return Utterance(u.start + cut / SAMPLE_RATE, u.end, u.audio[cut:], u.id)
        return u if self.s.active else None

    def on_pause(self, u: Pause) -> None:
        """A pause inside a turn: start its work on what was said so far (kept if the turn ends here)."""
        if self.key and self.key.answer(u, final=False):
            return
        p = self.pending.get(u.id)
        if p is not None:  # a later pause of the same turn: transcribe again, the earlier one goes stale
            self._retranscribe(p, u)
            return
        admitted = self._admit(u, report=False)
        if admitted is not None:
            self._start(admitted)

    def on_utterance(self, u: Utterance) -> None:
        if self.key and self.key.answer(u):
            return
        p = self.pending.get(u.id)
        if p is None:
            admitted = self._admit(u, report=True)
            if admitted is None:
                return
            p = self._start(admitted)
        else:  # work started at a pause: kept if no speech came after it
            self._retranscribe(p, u)
        p["final"], p["heard_at"] = True, time.perf_counter()
        self.busy.add()  # preparing the turn (e.g. the words' emotion) is work: stream time must wait for it
        try:
            if self.key:
                self.key.transcript_in(u.id)
            self._refuse(p)
            self.try_turn()
        finally:
            self.busy.add(-1)

    def _retranscribe(self, p: dict[str, Any], u: Utterance) -> None:
        """The user went on after a pause: transcribe the turn so far again (cut as it was admitted)."""
        if p["asr_end"] == u.end:
            return
        cut = max(0, int((p["start"] - u.start) * SAMPLE_RATE))
        p.pop("transcript", None)
        p["asr_end"] = u.end
        self.busy.add()
        self.asr_q.put(Utterance(u.start + cut / SAMPLE_RATE, u.end, u.audio[cut:], u.id))

    def _start(self, u: Utterance) -> dict[str, Any]:
        """Send a turn's audio to ASR, and to the voice check when it unlocks or re-verifies."""
        p: dict[str, Any] = {"heard_at": time.perf_counter(), "asr_end": u.end, "final": False, "start": u.start}
        self.pending[u.id] = p
        if self.s.state is State.VERIFYING:
            self.busy.add(2)
            self.gate_q.put(VerifyJob(u))
        elif self.reverify_min_s is not None and u.end - u.start >= self.reverify_min_s and self.s.user:
            self.busy.add(2)
            self.gate_q.put(VoiceJob(u, self.s.user))  # checked beside ASR: no added latency
        else:  # too short to judge a voice by (or not re-verifying): the unlocked user's
            self.s.heard(u.end)
            p["verify"] = "accept"
            self.busy.add()
        self.asr_q.put(u)
        return p

    def on_tick(self, t: float) -> None:
        if self.key:
            self.key.tick(t)
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
        if self.key and self.key.handles(r):
            return
        if r.stage is Stage.VERIFY and isinstance(r.job, VoiceJob):
            self.on_voice(r)
        elif r.stage is Stage.VERIFY:
            self.on_verified(r)
        elif r.stage is Stage.ASR:
            p = self.pending.get(r.job.id)
            if p is None or p.get("asr_end", r.job.end) != r.job.end:
                return  # a stale speculative transcript (the turn went on after a pause, or was dropped)
            p["transcript"], p["asr_at"] = (r.value, r.error), time.perf_counter()
            if self.key:
                self.key.transcript_in(r.job.id)
            self.try_turn()
        elif r.stage is Stage.CONTROLLER:
            self.on_spoken(r)

    def on_verified(self, r: StageResult) -> None:
        u: Utterance = r.job.utt
        res: GateResult = r.value if r.error is None else GateResult(
            "reject", None, f"speaker check failed: {r.error}", "Sorry, I can't unlock: something went wrong "
            "while checking who you are.")
        if self.key and self.key.after_gate(u, res):
            return
        p = self.pending.get(u.id)
        if p is None:
            return  # its turn was dropped (e.g. it overlapped our playback): no decision on it
        accepted = self.s.verified(u.end, res.as_event())
        p["verify"] = "accept" if accepted else "reject"
        if accepted:
            self.prefs = Preferences.of(res.user or "", res.prefs)
            self.greeting = self.prefs.greeting()
        else:
            p["refusal"] = res.spoken
            self._refuse(p)
        self.try_turn()

    def _refuse(self, p: dict[str, Any]) -> None:
        """Say a refusal once its turn has ended (a check started at a pause may finish first)."""
        if p.get("final") is not False and "refusal" in p:
            self.say(ReplyKind.REFUSAL, p.pop("refusal"), p["heard_at"])

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
            if "verify" not in p or "transcript" not in p or p.get("final") is False:
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
            self.say(ReplyKind.NOTICE, SPOKEN_ERRORS[ErrorCode.NO_SPEECH], p["heard_at"])
            return
        now = time.perf_counter()  # the turn starts: transcript in and (first turn) the voice accepted
        self.s.event(t, "transcript", text=text, asr_wait_s=round(p.get("asr_at", now) - p["heard_at"], 3),
                     turn_wait_s=round(now - p["heard_at"], 3))
        if self.s.is_goodbye(text):
            self.goodbye = True
            self.say(ReplyKind.GOODBYE, GOODBYE, p["heard_at"])
            return
        self.say(ReplyKind.REPLY, text, p["heard_at"], self.emotion_of(text) if self.emotion_of else None)

    def say(self, kind: ReplyKind, text: str, heard_at: float, emotion: str | None = None) -> None:
        """Queue a spoken job; while unlocked it carries the user's prefs (and the greeting, once)."""
        prefs = self.prefs if self.s.active else None
        greeting = None
        if prefs is not None and kind is not ReplyKind.GOODBYE:
            greeting, self.greeting = self.greeting, None
        self.busy.add()
        self.speak_q.put(ReplyJob(kind, text, heard_at, emotion, prefs, greeting))

    def on_spoken(self, r: StageResult) -> None:
        t = self.now
        if r.error is not None:
            self.s.event(t, "error", stage="controller", message=r.error)
            return
        sp: Reply = r.value.reply
        fields: dict[str, Any] = {"text": sp.text, "audio": r.value.audio}
        if sp.first_audio_s is not None:
            fields["first_audio_s"] = round(sp.first_audio_s, 3)
        if sp.greeting:
            fields["greeting"] = sp.greeting
        if sp.result is not None:
            for call in sp.result.tool_calls:
                self.s.event(t, "tool_call", **call.as_dict())
            fields.update(emotion=sp.result.emotion, interrupted=sp.result.interrupted, error=sp.result.error,
                          timings={k: round(v, 3) for k, v in sp.result.timings.items()})
        if sp.tts_error:
            fields["tts_error"] = sp.tts_error
        self.s.event(t, sp.kind.value, **fields)
        if self.key:
            self.key.spoken(sp.kind, sp.text)
        if self.goodbye and sp.kind is ReplyKind.GOODBYE:
            self.goodbye = False
            self.s.lock(t, "goodbye")
        self.s.after_reply(t)
