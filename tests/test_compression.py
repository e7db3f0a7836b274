"""Model profiles (issue 14): each one resolves to its variants, loads, and answers a spoken turn."""
from __future__ import annotations

import gc

import pytest

from agent.common.config import ConfigError, load_settings
from agent.common.model_profiles import PROFILES
from tests.fakes import FACES, ROOT, TESTDATA, compose, enrol_owner, types


def _models(s) -> dict[str, dict[str, object]]:
    return {section: {k: getattr(getattr(s, section), k) for k in keys}
            for section, keys in PROFILES["small"].items()}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_sets_its_variants(name):
    s = load_settings(None, profile=name)
    assert s.profile == name
    assert _models(s) == PROFILES[name]


def test_explicit_keys_win_and_the_cli_overrides_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: accurate\nasr:\n  model: tiny.en\n")
    s = load_settings(cfg)
    assert s.profile == "accurate" and s.asr.model == "tiny.en"  # the file's key wins over the profile
    assert s.asr.compute_type == PROFILES["accurate"]["asr"]["compute_type"]
    assert load_settings(cfg, profile="small").llm.model == PROFILES["small"]["llm"]["model"]
    shipped = load_settings(ROOT / "config.yaml")
    assert _models(shipped) == PROFILES[shipped.profile]  # config.yaml leaves every model key to its profile


def test_unknown_profile_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: tiny\n")
    with pytest.raises(ConfigError, match="profile"):
        load_settings(cfg)


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_answers_a_spoken_turn(name, tmp_path):
    """Wake word -> voice + face gate -> ASR -> LLM -> TTS with every model of the profile."""
    from agent.identity.gate import IdentityGate, ImageFace
    from agent.session.assistant import Assistant
    from agent.session.runner import SessionRunner, build_parts
    from agent.session.scripted import synth

    s = enrol_owner(load_settings(ROOT / "config.yaml", profile=name, overrides={
        "paths": {"profiles": str(tmp_path / "profiles")}, "session": {"face": {"allow_still": True}}}))
    assert _models(s) == PROFILES[name]
    assistant = Assistant(s)
    gate = IdentityGate(s, ImageFace(FACES / "probe" / "obama_small.jpg"))
    audio = compose(synth(assistant.tts, "Hey Jarvis."), "spk1_snt4.wav")
    events = SessionRunner(s, build_parts(s, audio=audio, assistant=assistant, gate=gate), tmp_path).run(
        max_wall_s=240)
    kinds = types(events)
    verify = next(e for e in events if e["type"] == "verify")
    assert verify["decision"] == "accept", verify
    assert "stripe" in next(e for e in events if e["type"] == "transcript")["text"].lower(), events
    reply = next(e for e in events if e["type"] == "reply")
    assert reply["text"].strip() and reply["audio"], reply
    assert kinds.index("unlock") < kinds.index("transcript") < kinds.index("reply")
    del assistant, gate
    gc.collect()
