"""The conductor's audio-key steps: passphrase, challenge and lockout between the gate and the unlock.

``KeySteps`` is called from ``agent.session.conductor.Conductor`` (the session thread) at a few hooks
and drives its pending turns, jobs and speech; the policy and checks are in agent.identity.audio_key.

* Gate accept/doubt -> if the user has a passphrase, a ``PhraseJob`` on the same utterance
  once its transcript is in; then, if wanted, a challenge: "Say: ..." is spoken, the next
  utterance (after the prompt, within the time limit) is transcribed and checked.
* All steps passed -> unlock. A passphrase utterance is never answered (its transcript is
  dropped unseen); an ordinary command held behind a challenge is answered after it.
* Any refusal counts toward the lockout; a wake word during a lockout is answered with the
  plain wait sentence only.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from agent.common.phrases import CHALLENGE_LATE, CHALLENGE_REFUSED, PASSPHRASE_REFUSED, UNLOCKED, wait_text
from agent.identity.audio_key import KeyPolicy, KeyResult, PhraseJob
from agent.identity.verify import Decision
from agent.identity.preferences import Preferences
from agent.session.events import EventType
from agent.session.stages import Stage, StageResult, Utterance, WakeHit
from agent.session.state import State
from agent.session.turns import KeyState
from agent.speak.reply import ReplyKind

if TYPE_CHECKING:
    import queue

    from agent.session.stages import Busy
    from agent.session.state import Session
    from agent.session.turns import PendingTurn, TurnPolicy
    from agent.speak.playback import Playback


class Host(Protocol):
    """What the key steps use of the session thread (agent.session.conductor.Conductor)."""

    s: Session
    playback: Playback
    policy: TurnPolicy
    busy: Busy
    gate_q: queue.Queue
    asr_q: queue.Queue
    pending: dict[int, PendingTurn]
    prefs: Preferences | None
    greeting: str | None

    @property
    def now(self) -> float: ...
    def say(self, kind: ReplyKind, text: str, heard_at: float, emotion: str | None = None) -> None: ...
    def try_turn(self) -> None: ...
    def refuse(self, p: PendingTurn) -> None: ...



class KeySteps:
    def __init__(self, conductor: Host, policy: KeyPolicy) -> None:
        self.c, self.policy = conductor, policy
        self.answers: dict[int, Utterance] = {}  # challenge answers being transcribed

    # -- hooks ------------------------------------------------------------------------------------
    def refuse_wake(self, hit: WakeHit) -> bool:
        """During a lockout a wake word only gets the wait sentence."""
        left = self.policy.lockout.remaining(hit.t)
        if left <= 0 or self.c.s.state is not State.LOCKED:
            return False
        self.c.s.event(hit.t, EventType.IGNORED, what="wake", reason="locked out", seconds_left=round(left, 1))
        if not self.c.playback.ahead():
            self.c.say(ReplyKind.REFUSAL, wait_text(left), time.perf_counter())
        return True

    def after_gate(self, u: Utterance, res: Decision) -> bool:
        """True if the key steps take the gate result over (a refusal, or more steps to come)."""
        c, t = self.c, u.end
        p = c.pending.get(u.id)
        if p is None:
            return True  # its turn was dropped (e.g. it overlapped our playback): no decision on it
        if not res.passed:
            c.s.verified(t, res.as_event())
            self._refuse(u.id, t, res.spoken)
            return True
        steps = (["passphrase"] if res.has_key else []) + (["challenge"] if self.policy.wants_challenge(
            res.decision) else [])
        if not steps:
            self.policy.passed()
            return False
        c.s.event(t, EventType.VERIFY, **res.as_event(), next=steps)
        p.key = KeyState(res, steps, u, "passphrase" in steps)
        self.transcript_in(u.id)
        return True

    def transcript_in(self, uid: int) -> None:
        """The command's turn has ended or its transcript arrived: start the next key step once both hold."""
        p = self.c.pending.get(uid)
        if not p or p.key is None or p.final is False or p.key.busy:
            return
        k = p.key
        if k.steps[:1] == ["challenge"]:
            k.busy = True
            self._ask(uid, k.utt.end)
            return
        if k.steps[:1] != ["passphrase"] or p.transcript is None:
            return
        k.busy = True
        k.steps = k.steps[1:]
        text, error = p.transcript
        if error or not text:
            self._refuse(uid, k.utt.end, PASSPHRASE_REFUSED, "passphrase: no words heard")
            return
        self.c.busy.add()
        assert k.res.user is not None  # a key step follows a gate decision that named the user
        self.c.gate_q.put(PhraseJob(k.utt, k.res.user, text, "passphrase"))

    def answer(self, u: Utterance, final: bool = True) -> bool:
        """An utterance while a challenge is out is its answer (True: taken; pauses inside it wait for its end)."""
        ch = self.policy.challenge
        if ch is None or self.c.s.state is not State.VERIFYING:
            return False
        if not final:
            return True
        if self.c.playback.overlaps(u.start + self.c.policy.preroll_s, u.end):
            self.c.s.event(u.end, EventType.IGNORED, what="speech", reason="overlaps our own playback",
                           seconds=round(u.end - u.start, 2))
            return True
        if ch.deadline is None or u.start < ch.asked_t:
            self.c.s.event(u.end, EventType.IGNORED, what="speech", reason="before the challenge was spoken",
                           seconds=round(u.end - u.start, 2))
            return True
        ch.answers.add(u.id)
        self.answers[u.id] = u
        self.c.busy.add()
        self.c.asr_q.put(u)
        return True

    def handles(self, r: StageResult) -> bool:
        """Results of the key's own jobs (phrase checks, answer transcripts)."""
        if r.stage is Stage.VERIFY and isinstance(r.job, PhraseJob):
            self._checked(r)
            return True
        if r.stage is Stage.ASR and r.job.id in self.answers:
            u = self.answers.pop(r.job.id)
            ch = self.policy.challenge
            if ch is not None and u.id in ch.answers:
                self.c.busy.add()
                text = r.value if r.error is None and r.value else ""
                self.c.gate_q.put(PhraseJob(u, ch.user, text, "challenge", ch.words))
            return True
        return False

    def tick(self, t: float) -> None:
        ch = self.policy.challenge
        if ch is not None and self.policy.expired(t):
            self.c.s.event(t, EventType.CHALLENGE_FAILED, user=ch.user, reason="no answer in time")
            self._refuse(ch.uid, t, CHALLENGE_LATE, "challenge failed: no answer in time")

    def spoken(self, kind: ReplyKind, text: str) -> None:
        """A reply was spoken: the challenge prompt's end starts the answer's time."""
        ch = self.policy.challenge
        if ch is not None and kind is ReplyKind.NOTICE and text == self.policy.prompt(ch):
            iv = self.c.playback.intervals
            self.policy.spoken(max(self.c.now, iv[-1][1] if iv else 0.0))

    # -- steps ------------------------------------------------------------------------------------
    def _ask(self, uid: int, t: float) -> None:
        p = self.c.pending[uid]
        assert p.key is not None and p.key.res.user is not None
        ch = self.policy.ask(p.key.res.user, uid, t)
        self.c.s.challenged(t, user=ch.user, words=len(ch.words), timeout_s=self.policy.cfg.challenge_timeout_s)
        self.c.say(ReplyKind.NOTICE, self.policy.prompt(ch), p.heard_at)

    def _checked(self, r: StageResult) -> None:
        job: PhraseJob = r.job
        res: KeyResult = r.value if r.error is None else KeyResult(False, False, None, f"check failed: {r.error}")
        t = job.utt.end
        if job.kind == "passphrase":
            p = self.c.pending.get(job.utt.id)
            if p is None or self.c.s.state is not State.VERIFYING:
                return
            self.c.s.event(t, EventType.PASSPHRASE, user=job.user, ok=res.ok, **res.as_event())
            if not res.ok:
                self._refuse(job.utt.id, t, PASSPHRASE_REFUSED, f"passphrase refused: {res.reason}")
            elif p.key is not None and p.key.steps:
                p.key.busy = False
                self.transcript_in(job.utt.id)
            else:
                self._unlock(job.utt.id, t)
            return
        ch = self.policy.challenge
        if ch is None or job.utt.id not in ch.answers:
            return  # decided already (an earlier answer, or the time ran out)
        late = self.policy.late(job.utt.end)
        if res.ok and not late:
            self.c.s.event(t, EventType.CHALLENGE_PASSED, user=ch.user, voice_score=res.voice_score)
            self._unlock(ch.uid, t)
        else:
            why = "answer came too late" if late else res.reason
            self.c.s.event(t, EventType.CHALLENGE_FAILED, user=ch.user, reason=why, phrase_match=res.phrase_match,
                           voice_score=res.voice_score)
            self._refuse(ch.uid, t, CHALLENGE_LATE if late else CHALLENGE_REFUSED, f"challenge failed: {why}")

    def _unlock(self, uid: int, t: float) -> None:
        c = self.c
        p = c.pending[uid]
        assert p.key is not None
        res: Decision = p.key.res
        self.policy.passed()
        if not c.s.unlock(t, res.user or ""):
            return
        c.prefs = Preferences.of(res.user or "", res.prefs)
        c.greeting = c.prefs.greeting()
        if p.key.passphrase:  # the passphrase itself is never a turn
            p.verify = "key"
            c.say(ReplyKind.NOTICE, UNLOCKED, p.heard_at)
        else:
            p.verify = "accept"  # the command held behind the challenge is answered now
        c.try_turn()

    def _refuse(self, uid: int, t: float, spoken: str, reason: str | None = None) -> None:
        """A failed unlock: locked, said (or the lockout sentence), counted."""
        c = self.c
        self.policy.challenge = None
        if reason is not None:
            c.s.lock(t, reason)
        lockout = self.policy.failed(t)
        if lockout is not None:
            c.s.event(t, EventType.LOCKOUT, seconds=round(self.policy.lockout.remaining(t), 1),
                      lockouts=self.policy.lockout.lockouts)
        p = c.pending.get(uid)
        if p is None:
            c.say(ReplyKind.REFUSAL, lockout or spoken, time.perf_counter())
        else:  # said once its turn has ended (the conductor's own rule for refusals)
            p.verify, p.refusal = "reject", lockout or spoken
            c.refuse(p)
        c.try_turn()


def attach(conductor: Host, settings: Any) -> KeySteps:
    return KeySteps(conductor, KeyPolicy.from_settings(settings))
