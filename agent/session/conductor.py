"""The session thread: applies agent.session.state's state machine to the pipeline's events.

Turn-taking and self-trigger rules (kept simple on purpose):

* While our reply plays (plus ``session.echo.tail_ms``), wake detections are ignored and
  utterances that overlap our playback never start a turn: they are our own echo.
* Barge-in is the one exception: VAD speech whose mic level is clearly above the
  expected echo (BargeInDetector) cancels playback and the rest of the reply; the
  utterance it belongs to becomes the next turn.
* While not unlocked the controller is never called (a refusal is spoken by TTS
  alone). ASR of the command runs speculatively alongside the speaker check and
  its transcript is dropped unless the check accepts.
* On unlock the user's profile preferences (agent.identity.preferences) apply to the
  user's jobs: the first one opens with a greeting by ``address_as`` (said while
  the controller thinks), replies get the ``reply_length`` sentence cap and the
  user's Piper voice when it is installed.
* With a camera stage beside the session, each reply is styled by the main face's
  emotion when the user's words were heard (``emotion_of``), and a held gesture
  (``GestureHit``, a report from the camera thread) is logged and its mode set on
  the ToolContext here, on the session thread; a locking mode locks at once, or
  after the reply in progress.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.common.phrases import CHECK_FAILED, GOODBYE, SPOKEN_ERRORS, device_line, refusal
from agent.identity.audio_key import KeyPolicy
from agent.identity.verify import Decision
from agent.identity.preferences import Preferences
from agent.session.events import EventType
from agent.session.key_steps import KeySteps
from agent.session.responses import Responses
from agent.session.stages import (
    END,
    BargeIn,
    Busy,
    GestureHit,
    Pause,
    SpeechStarted,
    Stage,
    StageError,
    StageResult,
    Tick,
    Utterance,
    WakeHit,
)
from agent.session.state import Session, State
from agent.session.turns import FaceJob, Lanes, PendingTurn, TurnPolicy, VerifyJob, VoiceJob
from agent.speak.playback import Playback
from agent.speak.reply import Reply, ReplyJob, ReplyKind
from tools.base import ToolContext
from tools.common.devices import DeviceState, DeviceStatus
from tools.common.errors import ErrorCode
from tools.common.pcm import SAMPLE_RATE

log = logging.getLogger(__name__)


class Conductor:
    """Consumes the hub queue until the end of the stream and all jobs are done."""

    def __init__(self, session: Session, lanes: Lanes, playback: Playback, busy: Busy, policy: TurnPolicy,
                 responses: Responses | None = None, stop: threading.Event | None = None,
                 emotion_of: Callable[[str], str | None] | None = None, key: KeyPolicy | None = None,
                 ctx: ToolContext | None = None) -> None:
        """``responses``: the reply stage (barge-in interrupts it); ``emotion_of``: the face's emotion
        while these words were heard; ``key``: the audio-key policy (None: the gate alone unlocks);
        ``ctx``: the tools' context a held gesture sets the mode of (its listeners include the session's
        ``mode_changed``; None: a context of its own)."""
        self.s, self.lanes, self.playback, self.busy, self.policy = session, lanes, playback, busy, policy
        self.ctx = ctx if ctx is not None else ToolContext()
        self.gate_q, self.asr_q, self.speak_q = lanes.gate, lanes.asr, lanes.speak
        self.responses, self.stop, self.emotion_of = responses, stop or threading.Event(), emotion_of
        self.wake_t = 0.0
        self.barge_t: float | None = None
        self.pending: dict[int, PendingTurn] = {}  # utterance id -> its turn so far
        self.prefs: Preferences | None = None  # of the unlocked user
        self.greeting: str | None = None  # due on the first job after an unlock
        self.goodbye = False
        self.last_face = -1e9
        self.face_error: str | None = None  # the face check's failure, logged once until a check works
        self.ended = False
        self.key = None if key is None else KeySteps(self, key)  # passphrase/challenge/lockout (agent.session.key_steps)

    @property
    def now(self) -> float:
        return self.playback.clock.now

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                item = self.lanes.hub.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.handle(item)
            except Exception as e:  # bad input or a bug in one event must not end the session
                self.s.event(self.now, EventType.ERROR, stage="session", message=f"{type(e).__name__}: {e}")
            if self.ended and not self.busy:
                return

    def handle(self, item: Any) -> None:
        if item is END:
            self.ended = True
        elif isinstance(item, WakeHit):
            self.on_wake(item)
        elif isinstance(item, SpeechStarted):
            if self.s.active and not self.playback.overlaps(item.t, item.t) and self.policy.reverify_min_s is None:
                self.s.heard(item.t)  # (re-verifying: only speech that passes the check counts)
            elif self.s.state is State.VERIFYING:
                self.s.command_started(item.t)
        elif isinstance(item, BargeIn):
            if self.responses is not None and self.responses.interrupt():
                self.barge_t = item.t
                self.s.event(item.t, EventType.BARGE_IN)
        elif isinstance(item, Pause):  # (a Pause is an Utterance so far: test it first)
            self.on_pause(item)
        elif isinstance(item, Utterance):
            self.on_utterance(item)
        elif isinstance(item, Tick):
            self.on_tick(item.t)
        elif isinstance(item, GestureHit):
            self.on_gesture(item)
        elif isinstance(item, DeviceStatus):
            self.on_device(item)
        elif isinstance(item, StageError):  # a stream stage died: END follows, the session finishes its jobs
            self.s.event(self.now, EventType.ERROR, stage=item.stage, message=item.message)
        elif isinstance(item, StageResult):
            try:
                self.on_result(item)  # queue any follow-up job first: busy never dips to 0 in between
            finally:
                if not isinstance(item.job, FaceJob):
                    self.busy.add(-1)

    # -- audio events -----------------------------------------------------------------------
    def on_wake(self, hit: WakeHit) -> None:
        if self.playback.overlaps(hit.t - self.policy.wake_echo_s, hit.t):
            self.s.event(hit.t, EventType.IGNORED, what="wake", reason="during our own playback", score=round(hit.score, 3))
            return
        if self.key and self.key.refuse_wake(hit):
            return
        if self.s.wake(hit.t, hit.score, hit.phrase):
            self.wake_t = hit.t

    def _admit(self, u: Utterance, report: bool) -> Utterance | None:
        """The part of ``u`` that may be a turn (cut to the command after a wake word), or None."""
        barged = self.barge_t is not None and u.start - self.policy.barge_lead_s <= self.barge_t <= u.end
        if self.playback.overlaps(u.start + self.policy.preroll_s, u.end) and not barged:  # pre-roll is not speech
            if report:
                self.s.event(u.end, EventType.IGNORED, what="speech", reason="overlaps our own playback",
                             seconds=round(u.end - u.start, 2))
            return None
        if self.s.state is State.VERIFYING:
            if u.end - self.wake_t < self.policy.min_command_s:
                return None  # the wake phrase alone: wait for the command
            cut = max(0, int((self.wake_t - self.policy.lookback_s - u.start) * SAMPLE_RATE))
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
        p.final, p.heard_at = True, time.perf_counter()
        self.busy.add()  # preparing the turn (e.g. the words' emotion) is work: stream time must wait for it
        try:
            if self.key:
                self.key.transcript_in(u.id)
            self.refuse(p)
            self.try_turn()
        finally:
            self.busy.add(-1)

    def _retranscribe(self, p: PendingTurn, u: Utterance) -> None:
        """The user went on after a pause: transcribe the turn so far again (cut as it was admitted)."""
        if p.asr_end == u.end:
            return
        cut = max(0, int((p.start - u.start) * SAMPLE_RATE))
        p.transcript, p.asr_end = None, u.end
        self.busy.add()
        self.asr_q.put(Utterance(u.start + cut / SAMPLE_RATE, u.end, u.audio[cut:], u.id))

    def _start(self, u: Utterance) -> PendingTurn:
        """Send a turn's audio to ASR, and to the voice check when it unlocks or re-verifies."""
        p = PendingTurn(time.perf_counter(), start=u.start, asr_end=u.end, final=False)
        self.pending[u.id] = p
        if self.s.state is State.VERIFYING:
            self.busy.add(2)
            self.gate_q.put(VerifyJob(u))
        elif (r := self.policy.reverify_min_s) is not None and u.end - u.start >= r and self.s.user:
            self.busy.add(2)
            self.gate_q.put(VoiceJob(u, self.s.user))  # checked beside ASR: no added latency
        else:  # too short to judge a voice by (or not re-verifying): the unlocked user's
            self.s.heard(u.end)
            p.verify = "accept"
            self.busy.add()
        self.asr_q.put(u)
        return p

    def on_tick(self, t: float) -> None:
        if self.key:
            self.key.tick(t)
        self.s.tick(t, busy=bool(self.busy) or self.playback.ahead())
        if self.policy.face_checks and self.s.active and t - self.last_face >= self.policy.face_check_s:
            self.last_face = t
            self.gate_q.put(FaceJob(t))

    def on_gesture(self, g: GestureHit) -> None:
        """Log a held gesture and set its mode on the ToolContext; a locking mode applies unless a job runs."""
        t = self.now
        # its listeners run here: Session.mode_changed remembers a locking mode, applied below (or after the reply)
        previous = self.ctx.set_mode(g.mode) if g.mode is not None else self.ctx.mode
        self.s.event(t, EventType.GESTURE, gesture=g.gesture, action=g.action, mode=g.mode, previous=previous)
        if not self.busy:
            self.s.after_reply(t)

    def on_device(self, d: DeviceStatus) -> None:
        """A live camera or microphone lost, still reconnecting, or back: a DEVICE event; lost and back are said."""
        line = device_line(d.device, d.state)
        self.s.event(self.now, EventType.DEVICE, device=d.device, state=d.state.value, reason=d.reason,
                     attempts=d.attempts, line=line)
        if d.state is not DeviceState.RECONNECTING:
            self.say(ReplyKind.NOTICE, line, time.perf_counter(), greet=False)  # the greeting waits for an answer

    # -- stage results ----------------------------------------------------------------------
    def on_result(self, r: StageResult) -> None:
        if r.stage is Stage.VERIFY and isinstance(r.job, FaceJob):
            if r.error is not None and self.face_error is None:  # e.g. the camera stopped: logged once an
                self.s.event(r.job.t, EventType.ERROR, stage="camera", message=r.error)  # outage, counted as no face
            self.face_error = r.error
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
            if p is None or p.asr_end not in (None, r.job.end):
                return  # a stale speculative transcript (the turn went on after a pause, or was dropped)
            p.transcript, p.asr_at = (r.value, r.error), time.perf_counter()
            if self.key:
                self.key.transcript_in(r.job.id)
            self.try_turn()
        elif r.stage is Stage.REPLY:
            self.on_spoken(r)

    def on_verified(self, r: StageResult) -> None:
        u: Utterance = r.job.utt
        res: Decision = r.value if r.error is None else Decision(
            "reject", None, f"speaker check failed: {r.error}", refusal(CHECK_FAILED))
        if self.key and self.key.after_gate(u, res):
            return
        p = self.pending.get(u.id)
        if p is None:
            return  # its turn was dropped (e.g. it overlapped our playback): no decision on it
        accepted = self.s.verified(u.end, res.as_event())
        p.verify = "accept" if accepted else "reject"
        if accepted:
            self.prefs = Preferences.of(res.user or "", res.prefs)
            self.greeting = self.prefs.greeting()
        else:
            p.refusal = res.spoken
            self.refuse(p)
        self.try_turn()

    def refuse(self, p: PendingTurn) -> None:
        """Say a refusal once its turn has ended (a check started at a pause may finish first)."""
        if p.final is not False and p.refusal is not None:
            refusal, p.refusal = p.refusal, None
            self.say(ReplyKind.REFUSAL, refusal, p.heard_at)

    def on_voice(self, r: StageResult) -> None:
        """A later turn's voice check: another voice is ignored (the session stays unlocked)."""
        u: Utterance = r.job.utt
        if r.error is not None:  # the check itself failed: said, and the turn goes ahead (fail open)
            self.s.event(u.end, EventType.ERROR, stage="verify", message=f"voice re-check failed: {r.error}")
        ok, score = r.value if r.error is None else (True, None)
        p = self.pending.setdefault(u.id, PendingTurn(time.perf_counter()))
        p.verify = "accept" if ok else "reject"
        if ok:
            self.s.heard(u.end)  # only the unlocked user's speech keeps the session awake
        else:
            why = f"score {score:.3f}" if score is not None else "no voice profile"
            self.s.event(u.end, EventType.IGNORED, what="speech", reason=f"not {r.job.user}'s voice ({why})",
                         seconds=round(u.end - u.start, 2))
        self.try_turn()

    def try_turn(self) -> None:
        """Turns whose check and transcript are both in, taken in the order they were spoken."""
        while self.pending:
            first = min(self.pending)  # an earlier utterance still being checked holds the later ones back
            if not self.pending[first].ready:
                return
            self._turn(self.pending.pop(first))

    def _turn(self, p: PendingTurn) -> None:
        if p.verify != "accept" or not self.s.active or p.transcript is None:
            return  # locked: the speculative transcript is dropped unseen
        text, error = p.transcript
        t = self.now
        if error or not text:
            self.s.event(t, EventType.ERROR, stage="asr", message=error or "empty transcript")
            self.say(ReplyKind.NOTICE, SPOKEN_ERRORS[ErrorCode.NO_SPEECH], p.heard_at)
            return
        now = time.perf_counter()  # the turn starts: transcript in and (first turn) the voice accepted
        self.s.event(t, EventType.TRANSCRIPT, text=text, asr_wait_s=round((p.asr_at or now) - p.heard_at, 3),
                     turn_wait_s=round(now - p.heard_at, 3))
        if self.s.is_goodbye(text):
            self.goodbye = True
            self.say(ReplyKind.GOODBYE, GOODBYE, p.heard_at)
            return
        self.say(ReplyKind.REPLY, text, p.heard_at, self.emotion_of(text) if self.emotion_of else None)

    def say(self, kind: ReplyKind, text: str, heard_at: float, emotion: str | None = None,
            greet: bool = True) -> None:
        """Queue a spoken job; while unlocked it carries the user's prefs (and the greeting, once, unless
        ``greet`` is off: a device notice is not said to the user's turn)."""
        prefs = self.prefs if self.s.active else None
        greeting = None
        if prefs is not None and greet and kind is not ReplyKind.GOODBYE:
            greeting, self.greeting = self.greeting, None
        self.busy.add()
        self.speak_q.put(ReplyJob(kind, text, heard_at, emotion, prefs, greeting))

    def on_spoken(self, r: StageResult) -> None:
        t = self.now
        if r.error is not None:
            self.s.event(t, EventType.ERROR, stage=Stage.REPLY.value, message=r.error)
            return
        sp: Reply = r.value.reply
        if r.value.save_error:  # the run folder is full or gone: said in the log, the session goes on
            self.s.event(t, EventType.ERROR, stage="run", code=ErrorCode.STORAGE.value, message=r.value.save_error)
        fields: dict[str, Any] = {"text": sp.text, "audio": r.value.audio}
        if sp.first_audio_s is not None:
            fields["first_audio_s"] = round(sp.first_audio_s, 3)
        if sp.greeting:
            fields["greeting"] = sp.greeting
        if sp.result is not None:
            for call in sp.result.tool_calls:
                self.s.event(t, EventType.TOOL_CALL, **call.as_dict())
            fields.update(emotion=sp.result.emotion, interrupted=sp.result.interrupted, error=sp.result.error,
                          timings={k: round(v, 3) for k, v in sp.result.timings.items()})
        if sp.tts_error:
            fields["tts_error"] = sp.tts_error
        self.s.event(t, EventType(sp.kind.value), **fields)
        if self.key:
            self.key.spoken(sp.kind, sp.text)
        if self.goodbye and sp.kind is ReplyKind.GOODBYE:
            self.goodbye = False
            self.s.lock(t, "goodbye")
        self.s.after_reply(t)
