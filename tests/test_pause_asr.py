"""ASR started at a pause inside a turn: kept when the turn ends there, redone when the user goes on.

Plumbing of the session thread (agent/session/conductor.py) driven with events, no models: the real-model
session runs are in test_session.py and the latency it buys is in ``main.py bench --only session``.
"""
from __future__ import annotations

import queue

import numpy as np

from agent.common.config import load_settings
from agent.identity.verify import Decision
from agent.session.conductor import Conductor
from agent.session.stages import Busy, Pause, Stage, StageResult, Utterance
from agent.session.state import Session
from agent.session.turns import Lanes, TurnPolicy, VerifyJob
from agent.speak.playback import Playback, StreamClock
from agent.speak.reply import ReplyKind


def _conductor() -> Conductor:
    clock = StreamClock()
    playback = Playback(clock)
    session = Session(load_settings(None).session)
    c = Conductor(session, Lanes(), playback, Busy(clock), TurnPolicy(lookback_s=0.5, face_check_s=5.0))
    session.wake(0.0, 0.9, "hey jarvis")
    return c


def _audio(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), np.float32)


def _drain(q: queue.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_turn_ending_at_the_pause_uses_the_early_transcript():
    c = _conductor()
    c.on_pause(Pause(0.0, 2.0, _audio(2.24), 1))
    (asr_job,) = _drain(c.asr_q)
    (verify_job,) = _drain(c.gate_q)
    assert isinstance(verify_job, VerifyJob) and asr_job.end == 2.0
    c.on_result(StageResult(Stage.ASR, asr_job, "what time is it"))
    c.on_result(StageResult(Stage.VERIFY, verify_job, Decision("accept", "sam", "ok", "")))
    assert c.speak_q.empty()  # the turn has not ended yet: nothing is answered
    c.on_utterance(Utterance(0.0, 2.0, _audio(2.3), 1))
    assert _drain(c.asr_q) == [] and _drain(c.gate_q) == []  # no second ASR or voice check
    job = c.speak_q.get_nowait()
    assert job.kind is ReplyKind.REPLY and job.text == "what time is it"
    assert [e["text"] for e in c.s.events if e["type"] == "transcript"] == ["what time is it"]


def test_user_going_on_after_the_pause_is_transcribed_whole_and_the_early_result_dropped():
    c = _conductor()
    c.on_pause(Pause(0.0, 2.0, _audio(2.24), 1))
    (early,) = _drain(c.asr_q)
    (verify_job,) = _drain(c.gate_q)
    c.on_result(StageResult(Stage.VERIFY, verify_job, Decision("accept", "sam", "ok", "")))
    c.on_utterance(Utterance(0.0, 3.5, _audio(3.8), 1))  # more speech after the pause
    (whole,) = _drain(c.asr_q)
    assert whole.end == 3.5
    c.on_result(StageResult(Stage.ASR, early, "what time"))  # stale: arrives late, is ignored
    assert c.speak_q.empty()
    c.on_result(StageResult(Stage.ASR, whole, "what time is it in Tokyo"))
    assert c.speak_q.get_nowait().text == "what time is it in Tokyo"


def test_refusal_waits_for_the_end_of_the_turn():
    c = _conductor()
    c.on_pause(Pause(0.0, 2.0, _audio(2.24), 1))
    _drain(c.asr_q)
    (verify_job,) = _drain(c.gate_q)
    c.on_result(StageResult(Stage.VERIFY, verify_job, Decision("reject", None, "voice", "Sorry, not you.")))
    assert c.speak_q.empty()  # not said over the speaker's own sentence
    c.on_utterance(Utterance(0.0, 2.0, _audio(2.3), 1))
    job = c.speak_q.get_nowait()
    assert job.kind is ReplyKind.REFUSAL and job.text == "Sorry, not you."


def test_stream_time_waits_while_the_turn_is_prepared():
    """A turn ending after its early transcript is prepared with the session busy (regression: the
    recording ran on while the words' emotion was read, so the next scripted line played over the reply)."""
    seen = []
    c = _conductor()
    c.emotion_of = lambda text: seen.append(bool(c.busy)) or None
    c.on_pause(Pause(0.0, 2.0, _audio(2.24), 1))
    (asr_job,) = _drain(c.asr_q)
    (verify_job,) = _drain(c.gate_q)
    c.on_result(StageResult(Stage.ASR, asr_job, "what time is it"))
    c.on_result(StageResult(Stage.VERIFY, verify_job, Decision("accept", "sam", "ok", "")))
    c.busy.add(-c.busy.n)  # both results were handed back (the session thread's finally does this)
    c.on_utterance(Utterance(0.0, 2.0, _audio(2.3), 1))
    assert seen == [True]
