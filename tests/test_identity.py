"""Identity stage on real models and real recordings/photos (../shared/testdata)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from agent.common.audio_io import write_wav
from agent.common.config import load_settings
from agent.evals.eer import (
    as_norm,
    asnorm_report,
    asnorm_trials,
    compute_eer,
    score_trials,
)
from agent.identity.faces import FaceError, read_image, sample_video
from agent.identity.profiles import ProfileError, ProfileStore
from tools.common.errors import ErrorCode, MMChatError

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()
SPEECH, FACES = TESTDATA / "speech", TESTDATA / "faces"
CLIP = FACES / "probe" / "short_hamilton_clip.mp4"

pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")


def _settings(profiles: Path):
    return load_settings(None, overrides={"paths": {"profiles": str(profiles)}})


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    """One IdentityChecker (models loaded once) with spk1's voice and six people's faces enrolled."""
    from agent.identity.verify import IdentityChecker

    c = IdentityChecker(_settings(tmp_path_factory.mktemp("profiles")))
    c.enroll("spk1", [SPEECH / f"spk1_snt{i}.wav" for i in (1, 2, 3)], [])
    for person in sorted((FACES / "enroll").iterdir()):
        c.enroll(person.name, [], sorted(person.iterdir()))
    return c


# --- voice -------------------------------------------------------------------------------------

def test_voice_accepts_held_out_sentence_and_rejects_other_speaker(checker):
    d = checker.verify(voice=SPEECH / "spk1_snt4.wav")
    assert (d.decision, d.user) == ("accept", "spk1"), d.as_json()
    for i in (1, 2, 3, 4):
        d = checker.verify(voice=SPEECH / f"spk2_snt{i}.wav")
        assert d.decision == "reject" and d.user is None, d.as_json()
        assert d.voice.value < checker.cfg.voice_threshold


def test_voice_embedding_is_unit_length(checker):
    from agent.common.audio_io import load_audio

    e = checker.voiceprint.embed(load_audio(SPEECH / "spk1_snt1.wav"))
    assert e.shape == (192,) and abs(np.linalg.norm(e) - 1) < 1e-5


@pytest.mark.parametrize("kind, code", [("empty", ErrorCode.AUDIO_EMPTY), ("corrupt", ErrorCode.AUDIO_INVALID),
                                        ("silence", ErrorCode.NO_SPEECH), ("missing", ErrorCode.AUDIO_MISSING)])
def test_bad_audio_gives_typed_error(checker, tmp_path, kind, code):
    p = tmp_path / "x.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "corrupt":
        p.write_bytes(b"RIFF\x00\x01junk" + bytes(range(256)) * 4)
    elif kind == "silence":
        write_wav(p, np.zeros(32000, np.float32), 16000)
    with pytest.raises(MMChatError) as e:
        checker.verify(voice=p)
    assert e.value.code == code and "\n" not in str(e.value)


# --- faces -------------------------------------------------------------------------------------

def test_face_probe_matches_obama(checker):
    d = checker.verify(face=FACES / "probe" / "obama_small.jpg")
    assert (d.decision, d.user) == ("accept", "obama"), d.as_json()
    assert d.face.value <= checker.cfg.face_threshold


def test_two_faces_is_an_explained_refusal(checker):
    with pytest.raises(FaceError, match="2 faces found in two_people.jpg"):
        checker.verify(face=FACES / "probe" / "two_people.jpg")


def test_voice_and_face_must_be_the_same_user(checker):
    d = checker.verify(voice=SPEECH / "spk1_snt4.wav", face=FACES / "probe" / "obama_small.jpg")
    assert d.decision == "reject" and "voice matches spk1 but face matches obama" in d.reason


@pytest.mark.parametrize("kind", ["empty", "corrupt", "missing", "no_face"])
def test_bad_image_gives_typed_error(checker, tmp_path, kind):
    p = tmp_path / "x.jpg"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "corrupt":
        p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    elif kind == "no_face":
        p = TESTDATA / "scenes" / "fruits.jpg"
    with pytest.raises(FaceError) as e:
        checker.verify(face=p)
    assert e.value.code == ErrorCode.IMAGE_INVALID and "\n" not in str(e.value)
    if kind == "no_face":
        assert "no face" in str(e.value)


def test_video_probe_finds_lin_manuel_miranda_and_is_live(checker):
    d = checker.verify(video=CLIP)
    assert d.face.user == "lin_manuel_miranda", d.as_json()
    assert (d.decision, d.user) == ("accept", "lin_manuel_miranda"), d.as_json()
    assert d.liveness is not None and d.liveness.live


def test_video_window_is_respected():
    frames = sample_video(CLIP, 2.0, 1.0, 5)
    assert len(frames) == 5 and all(1.95 <= t <= 3.05 for t, _ in frames)


# --- liveness ----------------------------------------------------------------------------------

def test_repeated_still_frame_is_not_live(checker):
    still = np.ascontiguousarray(read_image(FACES / "enroll" / "obama" / "obama.jpg")[:, :, ::-1])
    r = checker.liveness([still] * 10)
    assert not r.live and r.frames == 10 and not r.blink


def test_still_video_frame_repeated_is_not_live_but_the_clip_is(checker):
    frames = [f for _, f in sample_video(CLIP, 3.0, 3.0, 20)]
    assert checker.liveness(frames).live
    assert not checker.liveness([frames[5]] * 20).live


# --- profiles ----------------------------------------------------------------------------------

def _emb(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_profile_files_are_private_and_enrol_adds(tmp_path):
    store = ProfileStore(tmp_path / "profiles")
    store.enroll("alice", [_emb(1, 192)], [_emb(2, 128)])
    p = store.enroll("alice", [_emb(3, 192)], [])
    assert (len(p.voice), len(p.face)) == (2, 1)
    d = tmp_path / "profiles" / "alice"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert {f.name for f in d.iterdir()} == {"voice.npy", "face.npy", "profile.json"}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in d.iterdir())
    assert json.loads((d / "profile.json").read_text())["voice_samples"] == 2


def _fail_on_call(n: int, real):
    """A stand-in for ``real`` that raises OSError on its n-th call."""
    calls = []

    def fake(*a, **k):
        calls.append(a)
        if len(calls) == n:
            raise OSError("simulated failure")
        return real(*a, **k)
    return fake


def _same(a, b) -> bool:
    return np.array_equal(a.voice, b.voice) and np.array_equal(a.face, b.face)


@pytest.mark.parametrize("target, n", [("fsync", 2), ("rename", 2)])  # mid-file / mid-swap
def test_failed_write_keeps_old_profile(tmp_path, monkeypatch, target, n):
    store = ProfileStore(tmp_path)
    store.enroll("bob", [_emb(1, 192)], [_emb(2, 128)])
    before = store.load("bob")
    monkeypatch.setattr(os, target, _fail_on_call(n, getattr(os, target)))
    with pytest.raises(ProfileError, match="simulated"):  # a coded refusal, not a raw OSError
        store.enroll("bob", [_emb(3, 192)], [_emb(4, 128)])
    monkeypatch.undo()
    assert _same(store.load("bob"), before) and store.names() == ["bob"]
    assert sorted(f.name for f in tmp_path.iterdir()) == [".lock", "bob"]


def test_crash_mid_swap_recovers_on_next_start(tmp_path, monkeypatch):
    """Process dies between the two renames (no cleanup): the next access restores the old profile."""
    store = ProfileStore(tmp_path)
    store.enroll("bob", [_emb(1, 192)], [])
    before = store.load("bob")
    monkeypatch.setattr(ProfileStore, "_recover", staticmethod(lambda d: None))
    monkeypatch.setattr(os, "rename", _fail_on_call(2, os.rename))
    with pytest.raises(ProfileError):
        store.enroll("bob", [_emb(3, 192)], [])
    monkeypatch.undo()
    assert not (tmp_path / "bob").exists() and (tmp_path / ".bob.old").is_dir()  # the crash state
    fresh = ProfileStore(tmp_path)
    assert fresh.names() == ["bob"] and _same(fresh.load("bob"), before)
    assert not (tmp_path / ".bob.old").exists() and not (tmp_path / ".bob.new").exists()


def test_failed_enrol_input_writes_nothing(checker, tmp_path):
    before = checker.store.load("obama").face.copy()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"junk")
    with pytest.raises(FaceError):
        checker.enroll("obama", [], [FACES / "enroll" / "biden" / "biden.jpg", bad])
    assert np.array_equal(checker.store.load("obama").face, before)


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "", "x" * 65, "name with space"])
def test_bad_profile_names_refused(tmp_path, name):
    with pytest.raises(ProfileError):
        ProfileStore(tmp_path).enroll(name, [_emb(1, 192)], [])


def test_unknown_user(tmp_path):
    with pytest.raises(ProfileError, match="unknown user"):
        ProfileStore(tmp_path).remove("nobody")


# --- EER ---------------------------------------------------------------------------------------

def test_compute_eer():
    r = compute_eer([0.9, 0.8, 0.7, 0.35], [0.1, 0.2, 0.3, 0.4])
    assert r.eer == pytest.approx(0.25) and 0.3 < r.threshold <= 0.4
    assert compute_eer([0.9, 0.8], [0.1, 0.2]).eer == 0.0


def test_as_norm_standardises_by_the_top_k_of_each_side():
    enrol, test = np.array([0.1, 0.3, 0.2, -0.5]), np.array([0.0, 0.4, 0.2])
    # top 2: enrol 0.3, 0.2 (mean 0.25, std 0.05); test 0.4, 0.2 (mean 0.3, std 0.1)
    assert as_norm(0.5, enrol, test, 2) == pytest.approx(0.5 * ((0.5 - 0.25) / 0.05 + (0.5 - 0.3) / 0.1))
    assert np.isfinite(as_norm(0.5, np.ones(3), np.ones(3), 2))  # constant cohort: no division by zero


def test_asnorm_cohort_leaves_both_trial_speakers_out():
    spk = ["A", "A", "B", "C", "C", "D", "E"]
    embs = np.stack([_emb(i, 192) for i in range(len(spk))])
    first_impostor = lambda e: asnorm_trials(e, spk, 3)[1][0]  # trial A#0 vs B
    before = first_impostor(embs)
    other_a = embs.copy()
    other_a[1] = embs[2]  # A's second utterance now equals B's: must not matter (not in the cohort)
    assert first_impostor(other_a) == pytest.approx(before)
    third = embs.copy()
    third[3] = _emb(99, 192)  # a cohort utterance does matter
    assert first_impostor(third) != pytest.approx(before)
    g, i = asnorm_trials(embs, spk, 3)
    g0, i0 = score_trials(embs, spk)
    assert (len(g), len(i)) == (len(g0), len(i0)) == (2, 19)
    with pytest.raises(ValueError, match="cohort"):
        asnorm_trials(embs[:3], spk[:3], 3)


def test_asnorm_report_keeps_one_entry_per_k():
    spk = [s for s in "ABCDEF" for _ in range(2)]
    embs = np.stack([_emb(i, 192) for i in range(len(spk))])
    r = asnorm_report(embs, spk, (2, 5))
    assert set(r["k"]) == {"2", "5"} and r["cohort_size_min_max"] == [8, 10]
    assert all(v["genuine_trials"] == 6 and v["impostor_trials"] == 60 for v in r["k"].values())


def test_enrolled_protocol_scores_probes_against_mean_models():
    from agent.evals.eer import enrolled_report, enrolled_trials

    spk = [s for s in "ABCD" for _ in range(4)] + ["E"]  # E has too few utterances for a model
    embs = np.stack([_emb(i, 192) for i in range(len(spk))])
    genuine, impostor = enrolled_trials(embs, spk)
    assert len(genuine) == 4 * 4 and len(impostor) == 4 * 13  # each model vs every other speaker's utterance
    shifted, _ = enrolled_trials(embs, spk, probes=-embs)  # probes are scored, models come from embeddings
    assert np.allclose(shifted, -np.asarray(genuine))
    r = enrolled_report(genuine, impostor, configured=0.33)
    assert r["genuine_trials"] == 16 and set(r["at_configured_threshold"]) == {"threshold", "far", "frr"}


def test_eer_cli_refuses_bad_cohort_k(capsys):
    from agent.evals.voice_trust import main

    with pytest.raises(SystemExit) as e:
        main(["--norm", "asnorm", "--cohort-k", "5,x"])
    assert e.value.code == 2 and "--cohort-k" in capsys.readouterr().err


@pytest.mark.slow
def test_measured_eer_is_low():
    from agent.evals.voice_trust import measure

    s = load_settings(None)
    out = measure(TESTDATA, s.models_dir, norm="asnorm", cohort_k=(5, 10, 20))
    assert out["eer"] < 0.08 and out["genuine_trials"] >= 40
    assert set(out["asnorm"]["k"]) == {"5", "10", "20"}
    assert all(v["genuine_trials"] == out["genuine_trials"] for v in out["asnorm"]["k"].values())
    enrolled = out["enrolled"]
    assert enrolled["full"]["eer"] <= 0.02 and enrolled["first_1.5_s"]["eer"] <= 0.02


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_enroll_list_verify_remove(tmp_path, capsys):
    from agent.app.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  profiles: {tmp_path / 'profiles'}\n")
    run = lambda *a: (main([*a, "--config", str(cfg), "--json"]), capsys.readouterr())  # noqa: E731
    code, out = run("enroll", "obama", "--face", str(FACES / "enroll" / "obama" / "obama.jpg"))
    assert code == 0 and json.loads(out.out) == {"user": "obama", "voice_samples": 0, "face_samples": 1,
                                              "passphrase": False}
    code, out = run("profiles", "list")
    assert json.loads(out.out) == {"users": ["obama"], "preferences": {
        "obama": {"address_as": "obama", "voice": None, "reply_length": "short"}}}
    code, out = run("verify", "--face", str(FACES / "probe" / "two_people.jpg"))
    assert code == 2 and out.out == "" and out.err.strip().count("\n") == 0 and "2 faces" in out.err
    code, out = run("verify", "--face", str(FACES / "probe" / "obama_small.jpg"))
    res = json.loads(out.out)
    assert code == 0 and res["decision"] == "accept" and res["user"] == "obama" and res["voice_score"] is None
    code, out = run("profiles", "remove", "obama")
    assert code == 0 and json.loads(out.out)["users"] == []
