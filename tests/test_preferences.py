"""Per-user preferences: set by `enroll`, listed by `profiles list`, applied on unlock and per reply."""
from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from agent.common.config import ControllerSettings, load_settings
from agent.identity.verify import Decision
from agent.identity.preferences import Preferences
from agent.session.conductor import Conductor
from agent.session.responses import Responses
from agent.session.stages import Busy, Stage, StageResult, Stats, Utterance
from agent.session.state import Session
from agent.session.turns import Lanes, TurnPolicy, VerifyJob
from agent.speak.playback import Playback, StreamClock
from agent.speak.reply import ReplyJob, ReplyKind, ReplyPath
from agent.think.controller import Controller, TurnResult
from agent.think.prompts import PromptBook

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()
WAV = TESTDATA / "speech" / "spk1_snt1.wav"
JPG = TESTDATA / "faces" / "enroll" / "obama" / "obama.jpg"


# -- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, capsys):
    from agent.app.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  profiles: {tmp_path / 'profiles'}\n")
    return lambda *a: (main([*a, "--config", str(cfg), "--json"]), capsys.readouterr())


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")
def test_enroll_sets_preferences_and_list_shows_them(cli, tmp_path):
    code, out = cli("enroll", "sam", "--voice", str(WAV), "--face", str(JPG), "--address-as", "Sam",
                    "--reply-length", "long", "--tts-voice", "en_US-joe-medium")
    assert code == 0, out.err
    assert json.loads(out.out) == {"user": "sam", "voice_samples": 1, "face_samples": 1, "passphrase": False}
    stored = json.loads((tmp_path / "profiles" / "sam" / "profile.json").read_text())
    want = {"address_as": "Sam", "voice": "en_US-joe-medium", "reply_length": "long"}
    assert stored["preferences"] == want
    code, out = cli("profiles", "list")
    assert code == 0 and json.loads(out.out) == {"users": ["sam"], "preferences": {"sam": want}}

    # Preferences alone update an existing profile; the samples stay.
    code, out = cli("enroll", "sam", "--reply-length", "normal")
    assert code == 0 and json.loads(out.out)["voice_samples"] == 1, out.err
    assert json.loads(cli("profiles", "list")[1].out)["preferences"]["sam"] == {**want, "reply_length": "normal"}


def test_enroll_rejects_bad_preferences(cli, tmp_path):
    code, out = cli("enroll", "sam", "--face", str(JPG), "--tts-voice", "en_GB-nobody-low")
    assert code == 2 and out.out == "" and out.err.strip().count("\n") == 0
    assert "unknown voice 'en_GB-nobody-low'" in out.err and "en_US-joe-medium" in out.err
    with pytest.raises(SystemExit) as e:
        cli("enroll", "sam", "--face", str(JPG), "--reply-length", "epic")
    assert e.value.code == 2
    assert not (tmp_path / "profiles" / "sam").exists()
    code, out = cli("enroll", "nobody", "--address-as", "N")  # a new profile needs a sample
    assert code == 2 and "at least one" in out.err


# -- controller -----------------------------------------------------------------------------------
def _controller() -> Controller:
    sentences = " ".join(f"This is sentence {w}." for w in ("one", "two", "three", "four", "five", "six"))
    llm = GenericFakeChatModel(messages=itertools.cycle([sentences]))
    return Controller(llm, [], PromptBook(), ControllerSettings(router=False, history_turns=0))


@pytest.mark.parametrize("override", [None, 3, 4])
def test_respond_max_sentences_overrides_the_style_cap(override):
    ctl = _controller()
    cap = ctl.style_cap("neutral")
    heard: list[str] = []
    res = ctl.respond("Tell me about sentences.", "neutral", on_sentence=heard.append, max_sentences=override)
    assert len(heard) == (cap if override is None else override) and res.reply == " ".join(heard)


# -- session: greeting, reply length, voice ----------------------------------------------------------
class FakeTTS:
    sample_rate = 16000
    name = "en_US-joe-medium"

    def __init__(self) -> None:
        self.said: list[str] = []

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.said.append(text)
        yield np.zeros(160, np.float32)

    def with_voice(self, name: str) -> FakeTTS:
        from tools.common.errors import ModelMissingError

        raise ModelMissingError(f"voice '{name}' is not installed")


class FakeController:
    def __init__(self) -> None:
        self.caps: list[int | None] = []

    def style_cap(self, emotion: str | None = None) -> int:
        return 2

    def respond(self, text, emotion=None, on_sentence=None, cancel=None, max_sentences=None):
        self.caps.append(max_sentences)
        on_sentence("Sure.")
        return TurnResult(text=text, reply="Sure.")


def _unlock(prefs: dict, between: Callable[[Conductor], object] | None = None,
            ) -> tuple[Conductor, Responses, FakeTTS, FakeController]:
    """A conductor whose user has just been accepted and transcribed; its speak job is queued
    (``between``: what happens after the acceptance, before the transcript)."""
    clock = StreamClock()
    playback = Playback(clock)
    playback.closed.set()  # no source moves the clock: playback returns at once
    tts, ctl = FakeTTS(), FakeController()
    responses = Responses(ReplyPath(ctl, tts), playback, None, None, Stats())
    session = Session(load_settings(None).session)
    c = Conductor(session, Lanes(), playback, Busy(clock), TurnPolicy(lookback_s=0.5, face_check_s=5.0), responses)
    session.wake(0.0, 0.9, "hey jarvis")
    utt = Utterance(0.0, 2.0, np.zeros(32000, np.float32), id=1)
    c.on_utterance(utt)  # the command's turn ends: its voice check and ASR are queued
    c.on_result(StageResult(Stage.VERIFY, VerifyJob(utt), Decision("accept", "sam", "voice and face match sam",
                                                                    "", prefs=prefs)))
    if between is not None:
        between(c)
    c.on_result(StageResult(Stage.ASR, utt, "what time is it"))
    return c, responses, tts, ctl


def test_unlock_greets_by_address_as_once_and_applies_reply_length(caplog):
    c, responses, tts, ctl = _unlock({"address_as": "Sammy", "voice": "en_US-lessac-medium",
                                      "reply_length": "long"})
    job: ReplyJob = c.speak_q.get_nowait()
    assert job.kind == "reply" and job.greeting == "Hi Sammy." and job.prefs.reply_length == "long"
    with caplog.at_level(logging.WARNING, logger="agent.speak.reply"):
        spoken = responses(job)
    assert tts.said == ["Hi Sammy.", "Sure."]  # greeting first, in the fallback voice
    assert spoken.reply.text == "Sure." and spoken.reply.greeting == "Hi Sammy."
    assert ctl.caps == [2 + 2]  # long = style cap + 2
    assert "en_US-lessac-medium" in caplog.text and "configured voice" in caplog.text

    c.on_result(StageResult(Stage.REPLY, job, spoken))
    reply = next(e for e in c.s.events if e["type"] == "reply")
    assert reply["greeting"] == "Hi Sammy." and reply["text"] == "Sure."
    c.say(ReplyKind.REPLY, "and now?", 0.0)  # later turns: no greeting, same preferences
    later = c.speak_q.get_nowait()
    assert later.greeting is None and later.prefs == job.prefs


def test_a_device_notice_after_the_unlock_leaves_the_greeting_to_the_answer():
    """The camera lost between the unlock and the answer: its line is said without the greeting, and the
    answer still opens with it."""
    from tools.common.devices import DeviceState, DeviceStatus

    c, *_ = _unlock({"address_as": "Sammy"}, lambda c: c.on_device(DeviceStatus("camera", DeviceState.DOWN)))
    notice, answer = c.speak_q.get_nowait(), c.speak_q.get_nowait()
    assert notice.kind == "notice" and notice.text == "I've lost the camera; I'll keep trying."
    assert notice.greeting is None and answer.kind == "reply" and answer.greeting == "Hi Sammy."


def test_defaults_greet_by_user_name_and_keep_the_style_cap():
    c, responses, tts, ctl = _unlock({})
    job = c.speak_q.get_nowait()
    assert job.prefs == Preferences("sam") and job.greeting == "Hi sam."
    responses(job)
    assert ctl.caps == [None]  # short: respond's own cap
    assert responses.replies.voice(Preferences("sam", voice="en_US-joe-medium")) is tts  # the configured voice
