"""Same-channel impostors (agent/evals/same_channel.py): trial plumbing, and the configured
threshold against another speaker recorded on the owner's own set-up (real recordings)."""
from __future__ import annotations

import numpy as np
import pytest

from agent.common.config import load_settings
from agent.evals.same_channel import (
    FILLETS,
    TelephoneLine,
    Trial,
    choose_threshold,
    fillets_utterances,
    rates,
    rotations,
    trials,
)


def _emb(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=192).astype(np.float32)
    return v / np.linalg.norm(v)


def test_rotations_hold_each_utterance_out_of_its_model():
    spk = ["A"] * 5 + ["B"] * 3  # B has too few utterances for a 3-utterance model plus a probe
    rots = list(rotations(spk, 3))
    assert [s for s, _, _ in rots] == ["A"] * 5
    for _, held, idx in rots:
        assert held not in idx and len(set(idx)) == 3 and all(spk[i] == "A" for i in idx)


def test_trials_score_other_speakers_of_the_group_only_with_enough_speech():
    spk = ["A"] * 4 + ["B"] * 4
    embs = np.stack([_emb(i) for i in range(8)])
    ok = np.array([True] * 7 + [False])  # B's last utterance is too short to be a probe
    ts = trials("g", embs, embs, spk, ok)
    gen = [t for t in ts if t.genuine]
    imp = [t for t in ts if not t.genuine]
    assert len(gen) == 4 + 3  # every held-out utterance with enough speech
    assert len(imp) == 4 * 3 + 4 * 4  # A's 4 models vs B's 3 probes, B's 4 models vs A's 4 probes
    assert {t.group for t in ts} == {"g"}


def test_chosen_threshold_is_above_every_impostor():
    ts = [Trial("g", "A", "A", 0.7), Trial("g", "A", "A", 0.44), Trial("g", "A", "B", 0.41),
          Trial("g", "B", "A", 0.2)]
    t = choose_threshold(ts)
    assert t == pytest.approx(0.45)
    r = rates(ts, t)
    assert (r["impostor_accepts"], r["genuine_refusals"], r["frr"]) == (0, 1, 0.5)
    assert choose_threshold([Trial("g", "A", "B", 0.45), Trial("g", "A", "A", 0.9)]) == pytest.approx(0.5)


def test_telephone_line_keeps_length_and_removes_the_high_band():
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)  # above the 3.4 kHz band
    voice = (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32)
    line = TelephoneLine()
    out_tone, out_voice = line(tone), line(voice)
    assert out_tone.shape == tone.shape and out_tone.dtype == np.float32
    # both outputs are normalised to the same peak: the 6 kHz tone comes out as the (band-limited) noise floor
    band = lambda x, f: np.abs(np.fft.rfft(x))[f - 20:f + 20].sum()  # noqa: E731 - 1 Hz bins
    assert band(out_tone, 6000) < 0.01 * band(out_voice, 800)


@pytest.mark.skipif(not any(FILLETS.glob("*/cs/*.ogg")), reason="Debian fillets-ng-data-cs not installed")
def test_other_fish_on_the_same_recording_set_up_is_refused():
    """Two actors dubbed in one studio: a model of one refuses the other's 2 s commands at the configured
    threshold, and accepts most of its own held-out lines (real recordings, not the tuned ones)."""
    from agent.identity.voiceprint import ECAPA_DIR, EcapaVoiceprint, mean_embedding
    from tools.common.pcm import speech_only

    s = load_settings("config.yaml")
    vp = EcapaVoiceprint(s.models_dir / ECAPA_DIR)
    utts = [u for u in fillets_utterances("cs", per_speaker=40)]
    small = [u for u in utts if u.speaker.endswith("-m")][30:38]  # lines the measurement did not use
    big = [u for u in utts if u.speaker.endswith("-v")][30:36]

    def cut(u, seconds=2.0):
        return speech_only(u.audio, 1.0, u.name)[:int(seconds * 16000)]

    model = mean_embedding(np.stack([vp.embed(speech_only(u.audio, 1.0, u.name)) for u in small[:3]]))
    own = [float(model @ vp.embed(cut(u))) for u in small[3:]]
    other = [float(model @ vp.embed(cut(u))) for u in big]
    thr = s.identity.voice_threshold
    assert max(other) < thr, (other, thr)
    assert sum(x >= thr for x in own) >= len(own) - 1, (own, thr)


@pytest.mark.slow
def test_measured_same_channel_point():
    """The whole measurement: the configured threshold lets no real same-channel impostor in and refuses
    at most 5 % of 2 s genuine commands."""
    from agent.evals.voice_trust import measure

    s = load_settings("config.yaml")
    out = measure(s.testdata_dir, s.models_dir, s.identity.min_speech_s, configured=s.identity.voice_threshold)
    sc = out["same_channel"]
    assert sc["chosen"]["threshold"] <= s.identity.voice_threshold
    per = sc["chosen"]["first_2_s"]["per_group"]
    real = [per[g] for g in ("sb", "fillets-cs", "fillets-nl") if g in per]
    assert real and sum(r["impostor_accepts"] for r in real) == 0
    refused = sum(r["genuine_refusals"] for r in real) / sum(r["genuine_trials"] for r in real)
    assert refused <= 0.05


@pytest.mark.slow
def test_synthetic_voices_do_not_pass_the_voice_check():
    """Piper and espeak-ng commands against every enrolment model of the corpora: none accepted."""
    from agent.evals.voice_trust import measure

    s = load_settings("config.yaml")
    out = measure(s.testdata_dir, s.models_dir, s.identity.min_speech_s, configured=s.identity.voice_threshold,
                  same_channel=False, synthetic=True, settings=s)["synthetic"]
    assert out["commands"] >= 9 and out["models"] >= 10
    assert out["whole"]["accepts"] == 0 and out["first_2_s"]["accepts"] == 0, out
