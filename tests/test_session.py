"""Hands-free session on real recordings: gate, state machine, barge-in and self-triggering."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.common.audio_io import load_audio
from agent.common.config import load_settings, replaced
from agent.identity.gate import IdentityGate, ImageFace, NoFace
from agent.session.runner import SessionRunner, build_parts
from agent.session.scripted import silence, synth
from agent.session.state import Session, State
from tests.fakes import (  # noqa: F401
    FACES,
    ROOT,
    SPEECH,
    TESTDATA,
    FakeASR,
    FakeController,
    FakeGate,
    compose,
    enrol_owner,
    run_fake,
    settings_for,
    types,
)
from tools import ToolContext
from tools.common.pcm import SAMPLE_RATE as SR

PROBE = FACES / "probe" / "obama_small.jpg"

pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")


def _settings(profiles: Path, **session):
    return settings_for(profiles, **session)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """Demo user enrolled: spk1's voice (snt1-3) and Obama's face; still photos allowed explicitly."""
    return enrol_owner(_settings(tmp_path_factory.mktemp("profiles"), face={"allow_still": True}))


@pytest.fixture(scope="module")
def assistant(settings):
    from agent.session.assistant import Assistant

    return Assistant(settings)


@pytest.fixture(scope="module")
def gate(settings):
    g = IdentityGate(settings, ImageFace(PROBE))
    g.warm_up()
    return g


@pytest.fixture(scope="module")
def wake_phrase(assistant):
    return synth(assistant.tts, "Hey Jarvis.")


# -- real end-to-end runs -------------------------------------------------------------------------
def test_enrolled_user_unlocks_and_gets_an_answer(settings, assistant, gate, wake_phrase, tmp_path):
    _ = assistant.asr, assistant.controller
    audio = compose(wake_phrase, "spk1_snt4.wav")
    parts = build_parts(settings, audio=audio, assistant=assistant, gate=gate)
    events = SessionRunner(settings, parts, tmp_path).run(max_wall_s=150)
    kinds = types(events)
    for needed in ("wake", "verify", "unlock", "transcript", "reply"):
        assert needed in kinds, events
    verify = next(e for e in events if e["type"] == "verify")
    assert verify["decision"] == "accept" and verify["user"] == "demo", verify
    assert "still image" in verify["liveness"]  # documented, not silent
    assert "stripe" in next(e for e in events if e["type"] == "transcript")["text"].lower()
    reply = next(e for e in events if e["type"] == "reply")
    assert reply["text"] and Path(reply["audio"]).is_file()
    assert kinds.index("wake") < kinds.index("unlock") < kinds.index("transcript") < kinds.index("reply")
    assert events[-1]["type"] == "stats" and events[-1]["stages"]["vad"]["n"] > 100


def test_impostor_stays_locked_and_is_told_why(settings, assistant, gate, wake_phrase, tmp_path):
    controller = FakeController(["This must never be said."])
    audio = compose(wake_phrase, "spk2_snt2.wav")
    parts = build_parts(settings, audio=audio, assistant=assistant, gate=gate)
    parts.controller = controller
    events = SessionRunner(settings, parts, tmp_path).run(max_wall_s=120)
    kinds = types(events)
    assert "wake" in kinds and "unlock" not in kinds
    assert not {"transcript", "tool_call", "reply"} & set(kinds), events
    assert controller.calls == []
    verify = next(e for e in events if e["type"] == "verify")
    assert verify["decision"] == "reject" and "voice score" in verify["reason"]
    refusal = next(e for e in events if e["type"] == "refusal")
    assert refusal["text"].startswith("Sorry, I can't unlock") and refusal["text"].count(".") == 1
    assert Path(refusal["audio"]).is_file()


def test_still_photo_is_refused_unless_allowed(settings, gate):
    strict = IdentityGate(replaced(settings, "session.face", allow_still=False), ImageFace(PROBE), gate.checker)
    voice = load_audio(SPEECH / "spk1_snt4.wav")
    r = strict.check(voice, 3.0)
    assert r.decision == "reject" and "still image cannot show liveness" in r.reason
    none = IdentityGate(settings, NoFace(), gate.checker).check(voice, 3.0)
    assert none.decision == "reject" and "face check unavailable" in none.reason
    assert gate.check(voice, 3.0).decision == "accept"


def test_later_turns_from_another_voice_are_ignored_when_reverifying(settings, assistant, gate, wake_phrase,
                                                                     tmp_path):
    """session.turns.reverify_voice: once unlocked by spk1, spk2's question is ignored and spk1's answered."""
    s = replaced(settings, "session.turns", reverify_voice=True)
    controller = FakeController(["Sure."])
    audio = compose(wake_phrase, "spk1_snt4.wav", silence(5.0), "spk2_snt1.wav", silence(3.0), "spk1_snt3.wav")
    events, _ = run_fake(s, assistant.tts, audio, FakeASR(["first", "second", "third"]), controller, gate=gate,
                         run_dir=tmp_path)
    ignored = [e for e in events if e["type"] == "ignored" and e["what"] == "speech"]
    assert len(ignored) == 1 and "not demo's voice" in ignored[0]["reason"], events
    assert controller.calls == ["first", "third"], events  # spk2's turn ("second") never reached the controller
    assert [e["reason"] for e in events if e["type"] == "lock"] == ["end of session"]  # stayed unlocked


# -- turn-taking ------------------------------------------------------------------------------------
def test_barge_in_cancels_playback_and_trims_the_reply(settings, assistant, wake_phrase, tmp_path):
    sentences = [f"This is sentence number {w} of a long answer that keeps going." for w in
                 ("one", "two", "three", "four", "five", "six")]
    controller = FakeController(sentences)
    # The reply starts ~0.7 s after the command ends (VAD end of turn); the user cuts in and keeps
    # talking (two sentences), so the interruption overlaps our playback whatever the thread timing.
    audio = compose(wake_phrase, "spk1_snt4.wav", silence(1.8), "spk2_snt1.wav", "spk2_snt3.wav", silence(6.0))
    events, _ = run_fake(settings, assistant.tts, audio, FakeASR(["tell me a story", "stop"]), controller,
                         run_dir=tmp_path)
    kinds = types(events)
    assert "barge_in" in kinds, events
    first = next(e for e in events if e["type"] == "reply")
    assert first["interrupted"] is True
    spoken = first["text"]
    assert spoken == " ".join(sentences[:spoken.count("keeps going.")])  # whole sentences heard, in order
    assert len(spoken) < len(" ".join(sentences))
    heard = len(load_audio(first["audio"])) / SR if first["audio"] else 0.0
    assert heard < 6.0  # the full reply is > 20 s
    assert controller.calls[:2] == ["tell me a story", "stop"]  # the interruption became the next turn


@pytest.mark.parametrize("aec", ["webrtc", "none"])
def test_own_voice_does_not_wake_or_answer_itself(settings, assistant, wake_phrase, tmp_path, aec):
    """Our TTS says the wake word; its echo (session.echo.gain, a room path) is mixed into the input.

    With the echo canceller the echo never reaches the wake word; without it, gating during our
    playback is what stops it (the detector fires and the session ignores it).
    """
    from agent.listen.echo import RoomEcho
    from agent.listen.wakeword import WakeWordDetector

    s = replaced(settings, "session.echo", aec=aec)
    echoing = ["Hey Jarvis.", "You said hey Jarvis, what is the weather?", "Hey Jarvis, hey Jarvis."]
    controller = FakeController(echoing)
    asr = FakeASR(["say the wake word"])
    audio = compose(wake_phrase, "spk1_snt4.wav")
    events, _ = run_fake(s, assistant.tts, audio, asr, controller, run_dir=tmp_path)
    assert types(events).count("wake") == 1 and types(events).count("transcript") == 1, events
    assert asr.calls == 1 and len(controller.calls) == 1
    assert "barge_in" not in types(events)
    # Control: the same echo, neither cancelled nor gated, does wake the detector.
    reply = next(e for e in events if e["type"] == "reply")
    echo = RoomEcho.for_session(s.session.echo).apply(load_audio(reply["audio"]))
    assert len(WakeWordDetector(s.wake).detect(echo)) >= 1
    ignored = [e for e in events if e["type"] == "ignored" and e["what"] == "wake"]
    assert (len(ignored) == 0) if aec == "webrtc" else (len(ignored) >= 1), events


def test_echo_canceller_removes_our_voice_and_keeps_the_user(settings, assistant):
    """WebRTC AEC3 on a room echo of our reply, a real user talking over its second half."""
    from agent.evals.bench_echo import REPLY, cancel
    from agent.listen.wakeword import WakeWordDetector
    from tools.common.pcm import level

    run = cancel(synth(assistant.tts, REPLY), level(load_audio(SPEECH / "spk2_snt1.wav")), settings)
    assert run.erle_db >= 20.0, run.erle_db
    assert run.user_loss_db <= 6.0, run.user_loss_db
    assert run.barge_in and not run.false_barge_in
    wake = WakeWordDetector(settings.wake)
    assert wake.detect(run.mic[:run.split]) and not wake.detect(run.out[:run.split])  # "Hey Jarvis" in our reply


# -- the state machine with fakes ----------------------------------------------------------------
def test_goodbye_and_privacy_mode_lock(settings, assistant, wake_phrase):
    audio = compose(wake_phrase, "spk1_snt4.wav", silence(0.5))
    events, _ = run_fake(settings, assistant.tts, audio, FakeASR(["OK, goodbye for now"]), FakeController([]))
    assert next(e for e in events if e["type"] == "lock")["reason"] == "goodbye"

    ctx = ToolContext()
    controller = FakeController(["Switched to privacy mode."], ctx, "privacy")
    events, _ = run_fake(settings, assistant.tts, audio, FakeASR(["privacy please"]), controller, ctx=ctx)
    kinds = types(events)
    assert kinds.index("reply") < kinds.index("lock")
    assert next(e for e in events if e["type"] == "lock")["reason"] == "privacy mode"


def test_session_timeouts_and_face_gone():
    s = Session(load_settings(None).session)
    assert not s.verified(0.0, {"decision": "accept", "user": "x"})  # no wake: stays locked
    assert s.wake(1.0, 0.9, "hey jarvis") and s.state is State.VERIFYING
    assert not s.wake(1.5, 0.9, "hey jarvis")
    assert s.tick(5.0) is False and s.tick(10.0) is True and s.state is State.LOCKED  # wake timeout 8 s
    s.wake(20.0, 0.9, "hey jarvis")
    assert s.verified(21.0, {"decision": "accept", "user": "x"}) and s.active
    s.heard(25.0)
    assert not s.tick(50.0) and not s.tick(80.0, busy=True) and s.tick(56.0) and not s.active  # idle 30 s
    s.wake(60.0, 0.9, "hey jarvis")
    s.verified(61.0, {"decision": "accept", "user": "x"})
    assert not s.face_seen(62.0, False) and s.face_seen(64.0, False)  # two misses in a row
    assert [e["reason"] for e in s.events if e["type"] == "lock"] == [
        "no command after the wake word", "idle timeout", "face gone"]
    assert s.is_goodbye("Okay, goodbye!") and not s.is_goodbye("a good byline")


def test_turns_are_answered_in_the_order_spoken(settings):
    """With voice re-checks, a later short turn waits for an earlier one still being checked."""
    import queue

    from agent.session.conductor import Conductor
    from agent.session.stages import Busy, Stage, StageResult, Utterance
    from agent.session.turns import Lanes, TurnPolicy, VoiceJob
    from agent.speak.playback import Playback, StreamClock

    session = Session(settings.session)
    clock, speak = StreamClock(), queue.Queue()
    c = Conductor(session, Lanes(speak=speak), Playback(clock), Busy(clock), TurnPolicy(reverify_min_s=1.5))
    session.wake(0.0, 0.9, "hey jarvis")
    assert session.verified(1.0, {"decision": "accept", "user": "demo"})
    long_, short = (Utterance(2.0, 4.0, np.zeros(32000, np.float32), 1),
                    Utterance(5.0, 5.6, np.zeros(9600, np.float32), 2))
    c.on_utterance(long_)  # checked (2 s)
    c.on_utterance(short)  # too short to check
    c.on_result(StageResult(Stage.ASR, short, "second"))
    c.on_result(StageResult(Stage.ASR, long_, "first"))
    assert speak.empty()  # the first turn's voice check is still out
    c.on_result(StageResult(Stage.VERIFY, VoiceJob(long_, "demo"), (True, 0.7)))
    assert [speak.get_nowait().text for _ in range(2)] == ["first", "second"]
