"""Audio key: passphrases and challenges on real speech (shared recordings), the rule, the lockout."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.common.audio_io import load_audio
from agent.common.config import load_settings
from agent.common.phrases import wait_text
from agent.identity.audio_key import KeyPolicy, Lockout, load_words, verify_phrase
from agent.identity.phrase import PhraseKey, phrase_match, words
from tests.fakes import enrol_owner, settings_for
from tools.common.errors import ConfigError, MMChatError

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()
SPEECH, FACES = TESTDATA / "speech", TESTDATA / "faces"
PASSPHRASE = "a thin stripe runs down the middle"  # spk1_snt4.wav's transcript

pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")


_settings = settings_for


@pytest.fixture(scope="module")
def key_settings(tmp_path_factory):
    """spk1 enrolled (snt1-3) with the passphrase of spk1_snt4, and Obama's face."""
    return enrol_owner(_settings(tmp_path_factory.mktemp("profiles"), face={"allow_still": True}), "spk1", PASSPHRASE)


@pytest.fixture(scope="module")
def checker(key_settings):
    from agent.identity.verify import IdentityChecker

    return IdentityChecker(key_settings)


@pytest.fixture(scope="module")
def asr(key_settings):
    from agent.listen.asr import WhisperASR

    return WhisperASR(key_settings.asr, key_settings.models_dir)


@pytest.fixture(scope="module")
def tts(key_settings):
    from agent.speak.tts import PiperTTS

    return PiperTTS(key_settings.tts, key_settings.models_dir)


@pytest.fixture(scope="module")
def user_tts(key_settings):
    """Piper as a user's voice, without its sampling noise (the same words give the same audio every run)."""
    from piper import SynthesisConfig

    from agent.speak.tts import PiperTTS

    t = PiperTTS(key_settings.tts, key_settings.models_dir)
    t.config = SynthesisConfig(length_scale=1.0, noise_scale=0.0, noise_w_scale=0.0)
    return t


# -- the rule and the record -----------------------------------------------------------------------
def test_phrase_rule():
    assert words("Mr. Smith, um, has Seven dogs!") == ["mister", "smith", "has", "7", "dogs"]
    ref = words(PASSPHRASE)  # 7 words: one error allowed
    assert phrase_match(ref, words("Hey Jarvis. A thin stripe runs down the middle."), 0.25) == (True, 0)
    assert phrase_match(ref, words("a thin strip runs down the middle"), 0.25) == (True, 1)
    assert phrase_match(ref, words("a thin strip runs down a fiddle"), 0.25)[0] is False
    assert phrase_match(ref, words("the middle down runs stripe thin a"), 0.25)[0] is False  # order matters
    assert phrase_match(ref, words("a thin stripe runs"), 0.25)[0] is False
    three = words("amber river tiger")  # a three-word phrase must be heard whole
    assert phrase_match(three, words("amber, and river, tiger"), 0.25) == (True, 0)
    assert phrase_match(three, words("amber liver tiger"), 0.25)[0] is False
    spread = " x ".join(three) + " x x x x x x"  # extra words fit only up to n of them
    assert phrase_match(three, words(spread), 0.25)[0] is True
    assert phrase_match(three, words("amber x x x river x x x tiger"), 0.25)[0] is False


def test_key_record_holds_no_text():
    a, b = PhraseKey.create(PASSPHRASE), PhraseKey.create(PASSPHRASE)
    assert a.salt != b.salt and set(a.digests).isdisjoint(b.digests)  # salted: equal phrases look unrelated
    blob = json.dumps(a.as_json())
    assert not any(w in blob for w in ("thin", "stripe", "middle", "runs"))
    again = PhraseKey.from_json(json.loads(blob))
    assert again.match("A thin stripe runs down the middle.", 0.25) == (True, 0)
    assert again.match("the child almost hurt the small dog", 0.25)[0] is False
    with pytest.raises(MMChatError, match="too short"):
        PhraseKey.create("open up")


def test_lockout_grows_and_is_said_plainly():
    lock = Lockout(3, 60.0)
    assert lock.fail(0.0) is None and lock.fail(1.0) is None
    assert lock.fail(2.0) == 60.0 and lock.remaining(30.0) == pytest.approx(32.0)
    assert [lock.fail(t) for t in (70.0, 71.0, 72.0)] == [None, None, 120.0]  # doubled
    lock.success()
    assert [lock.fail(t) for t in (300.0, 301.0, 302.0)] == [None, None, 60.0]
    assert wait_text(60.0) == "Too many tries; wait a minute." and wait_text(120.0).endswith("wait 2 minutes.")


def test_config_and_word_list_are_checked(tmp_path):
    s = load_settings(ROOT / "config.yaml")
    assert s.identity.challenge == "off"  # quoted in config.yaml: YAML would read a bare off as false
    ws = load_words(s.path(s.identity.challenge_words))
    assert len(ws) >= 16 and all(len(words(w)) == 1 for w in ws)
    with pytest.raises(ConfigError, match="grey_zone"):
        load_settings(None, overrides={"identity": {"grey_zone": [0.5, 0.2]}})
    bad = tmp_path / "words.txt"
    bad.write_text("amber\nseven eleven\n")
    with pytest.raises(ConfigError, match="challenge_words"):
        load_words(bad)
    policy = KeyPolicy(s.identity.model_copy(update={"challenge": "always"}), ws)
    c = policy.ask("spk1", 1, 0.0)
    assert len(set(c.words)) == s.identity.challenge_length and policy.prompt(c).startswith("Say: ")
    timeout = s.identity.challenge_timeout_s
    assert not policy.expired(2 * timeout) and policy.expired(3 * timeout + 1)  # prompt never reported spoken
    policy.spoken(5.0)
    assert not policy.expired(5.0 + timeout) and policy.expired(5.1 + timeout) and policy.late(5.1 + timeout)
    c.answers.add(7)
    assert not policy.expired(100.0)  # an answer is being checked: it decides


# -- real speech -------------------------------------------------------------------------------------
def test_passphrase_on_real_speech(key_settings, checker, asr):
    """Right sentence + right speaker unlocks; the same speaker's other sentences do not."""
    right = verify_phrase(key_settings, checker, checker.verify(voice=SPEECH / "spk1_snt4.wav"),
                          SPEECH / "spk1_snt4.wav", None, asr)
    assert (right["decision"], right["user"], right["phrase_match"]) == ("accept", "spk1", True), right
    assert right["phrase_source"] == "passphrase" and "heard" not in right  # no transcript of a key utterance
    for i in (1, 2):  # enrolment takes: the voice matches best of all, the words do not
        wav = SPEECH / f"spk1_snt{i}.wav"
        wrong = verify_phrase(key_settings, checker, checker.verify(voice=wav), wav, None, asr)
        assert wrong["voice_score"] > 0.5 and wrong["phrase_match"] is False and wrong["decision"] == "reject"


def test_right_words_wrong_speaker_are_refused(key_settings, checker, asr, user_tts, tmp_path):
    """spk2's own sentence as the expected phrase, and Piper reading spk1's passphrase."""
    from agent.common.audio_io import write_wav
    from agent.session.scripted import synth

    wav = SPEECH / "spk2_snt2.wav"
    d = verify_phrase(key_settings, checker, checker.verify(voice=wav), wav, "what joy there is in living", asr)
    assert d["phrase_match"] is True and d["decision"] == "reject", d
    assert d["voice_score"] < key_settings.identity.voice_threshold
    fake = tmp_path / "piper.wav"
    write_wav(fake, synth(user_tts, "A thin stripe runs down the middle."), 16000)
    d = verify_phrase(key_settings, checker, checker.verify(voice=fake), fake, PASSPHRASE, asr)
    # Piper says it, but is not spk1: refused on the voice, whatever the words were heard as (Whisper
    # hears this synthetic sentence right or with one word off, and on some CPUs with more)
    assert d["decision"] == "reject" and d["voice_score"] < key_settings.identity.voice_threshold, d
    assert verify_phrase(key_settings, checker, checker.verify(voice=fake), fake, None, asr)["decision"] == "reject"


def test_profile_files_hold_no_passphrase(key_settings):
    folder = key_settings.path(key_settings.paths.profiles) / "spk1"
    blob = b"".join(p.read_bytes() for p in folder.iterdir())
    for w in ("thin", "stripe", "runs", "middle", PASSPHRASE):
        assert w.encode() not in blob
    assert json.loads((folder / "key.json").read_text())["voice"]  # the takes' embeddings are kept with it


def test_gate_doubt_asks_instead_of_refusing(key_settings, checker):
    """on_doubt: no face in view, or a voice score in the grey zone, gives 'doubt' (a challenge decides)."""
    from agent.identity.gate import IdentityGate, ImageFace, NoFace

    voice = load_audio(SPEECH / "spk1_snt4.wav")
    doubt = key_settings.model_copy(update={"identity": key_settings.identity.model_copy(
        update={"challenge": "on_doubt"})})
    assert IdentityGate(key_settings, NoFace(), checker).check(voice, 3.0).decision == "reject"
    r = IdentityGate(doubt, NoFace(), checker).check(voice, 3.0)
    assert (r.decision, r.user, r.has_key) == ("doubt", "spk1", True), r
    impostor = IdentityGate(doubt, NoFace(), checker).check(load_audio(SPEECH / "spk2_snt1.wav"), 3.0)
    assert impostor.decision == "reject"
    face = ImageFace(FACES / "probe" / "obama_small.jpg")
    assert IdentityGate(doubt, face, checker).check(voice, 3.0).decision == "accept"  # clear voice + face
    grey = doubt.model_copy(update={"identity": doubt.identity.model_copy(update={"grey_zone": (0.3, 0.95)})})
    r = IdentityGate(grey, face, checker).check(voice, 3.0)
    assert r.decision == "doubt" and r.details["voice_doubt"] is True and 0.3 <= r.details["voice_score"] < 0.95



def test_cli_bad_passphrase_input_is_one_line_and_saves_nothing(tmp_path, capsys):
    from agent.app.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  profiles: {tmp_path / 'profiles'}\n")
    wav = str(SPEECH / "spk1_snt1.wav")
    for args, needle in ((["enroll", "x", "--voice", wav, "--passphrase", "open up"], "too short"),
                         (["enroll", "x", "--face", str(FACES / "enroll" / "obama" / "obama.jpg"),
                           "--passphrase", "one two three four"], "needs --voice"),
                         (["verify", "--expect-phrase", "amber river tiger"], "needs --voice")):
        code = main([*args, "--config", str(cfg), "--json"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and needle in err and "\n" not in err, err
    assert not (tmp_path / "profiles" / "x").exists()
