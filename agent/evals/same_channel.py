"""Same-channel impostor trials: other people on the owner's microphone or line.

A voiceprint threshold fitted on trials across corpora is too lenient in a real room: two voices
on one microphone share its colouring and score closer (a two-speaker phone call let the other
speaker in at the 0.33 of cross-corpus trials). The trials here keep both sides on one channel:

* ``sb``: testdata/speech spk1 and spk2 (recorded alike, same set-up).
* ``fillets-cs``, ``fillets-nl``: Debian ``fillets-ng-data-cs`` / ``-nl``, the two fish of the game's
  dialogues, each dubbing recorded in one studio (file names ``*-m-*`` small fish, ``*-v-*`` big fish).
* ``room``: every speaker of the cross-corpus set (agent/evals/eer.py corpora) passed through one
  simulated line: RoomEcho reverberation, an 8 kHz telephone band and a fixed noise floor.

Protocol (as the gate scores): a model is the mean of ``ENROL_N`` utterances of one speaker;
genuine probes are the speaker's other utterances, impostor probes every utterance of the *other*
speakers of the same group; probes are cut to their first ``probe_s`` seconds of speech (commands
of at least that length). Scores are raw cosines, and AS-norm ones with the cohort of
agent/identity/cohort.py minus the trial's own speakers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from agent.common.audio_io import load_audio
from agent.evals.eer import ENROL_N, Utterance
from tools.common.pcm import SAMPLE_RATE, resample, rms

FILLETS = Path("/usr/share/games/fillets-ng/sound")
FILLETS_PER_SPEAKER = 30  # the first lines (sorted by path) that are long enough
FILLETS_MIN_S = 3.0  # whole-file duration kept (the probes are cut to 2 s of speech)
LINE_SNR_DB = 30.0


@dataclass(frozen=True)
class Trial:
    group: str
    model: str  # speaker of the model
    probe: str  # speaker of the probe
    score: float

    @property
    def genuine(self) -> bool:
        return self.model == self.probe


def fillets_utterances(lang: str, per_speaker: int = FILLETS_PER_SPEAKER) -> list[Utterance]:
    """The first ``per_speaker`` long-enough lines of each fish in one dubbing (empty if not installed)."""
    out: list[Utterance] = []
    for fish in ("m", "v"):
        n = 0
        for f in sorted(FILLETS.glob(f"*/{lang}/*-{fish}-*.ogg")):
            if n >= per_speaker:
                break
            a = load_audio(f)
            if a.size >= FILLETS_MIN_S * SAMPLE_RATE:
                out.append(Utterance(f"fillets-{lang}-{fish}", f"fillets/{lang}/{f.name}", a))
                n += 1
    return out


class TelephoneLine:
    """One shared simulated channel: room reverberation, 300-3400 Hz at 8 kHz, a fixed noise floor."""

    def __init__(self, decay_ms: float = 40.0, snr_db: float = LINE_SNR_DB, seed: int = 7) -> None:
        from scipy.signal import butter

        from agent.listen.echo import RoomEcho

        self.room = RoomEcho(gain=1.0, delay_ms=0, decay_ms=decay_ms, seed=seed)
        self.sos = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
        self.snr_db, self.seed = snr_db, seed

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt

        x = resample(self.room.apply(audio), SAMPLE_RATE, 8000)
        x = sosfilt(self.sos, x)
        level_ = rms(x) or 1e-6
        noise = np.random.default_rng(self.seed).standard_normal(x.size) * level_ / 10 ** (self.snr_db / 20)
        y = resample((x + noise).astype(np.float32), 8000, SAMPLE_RATE)
        return (y / max(1e-6, float(np.abs(y).max())) * 0.5).astype(np.float32)


def groups(cross: list[Utterance]) -> dict[str, list[Utterance]]:
    """Speakers sharing a channel, by group name (groups with fewer than two speakers are left out).

    ``cross``: the cross-corpus utterances (agent/evals/eer.py ``load_corpora``)."""
    line = TelephoneLine()
    out = {"sb": [u for u in cross if u.speaker.startswith("sb-")],
           "fillets-cs": fillets_utterances("cs"), "fillets-nl": fillets_utterances("nl"),
           "room": [Utterance(u.speaker, "line/" + u.name, line(u.audio)) for u in cross]}
    return {g: us for g, us in out.items() if len({u.speaker for u in us}) >= 2}


def rotations(speakers: list[str], n: int = ENROL_N) -> Iterator[tuple[str, int, np.ndarray]]:
    """(speaker, held-out utterance, model indices): each utterance in turn against the next ``n`` of
    its speaker (as agent/evals/eer.py ``enrolled_trials``); speakers with <= ``n`` utterances skip."""
    spk = np.asarray(speakers)
    for s in dict.fromkeys(speakers):
        own = np.flatnonzero(spk == s)
        if own.size > n:
            for k, t in enumerate(own):
                yield s, int(t), np.roll(own, -k)[1:n + 1]


def trials(group: str, embs: np.ndarray, probes: np.ndarray, speakers: list[str], probe_ok: np.ndarray,
           norm: "CohortNorm | None" = None, n: int = ENROL_N) -> list[Trial]:
    """Every rotation model against its held-out utterance (genuine) and every probe of the group's
    other speakers (impostor); only probes with ``probe_ok`` (enough speech) are scored."""
    from agent.identity.voiceprint import mean_embedding

    out: list[Trial] = []
    for s, held, idx in rotations(speakers, n):
        model = mean_embedding(embs[idx])
        for j in [held] + [j for j in range(len(speakers)) if speakers[j] != s]:
            if probe_ok[j]:
                raw = float(model @ probes[j])
                score = raw if norm is None else norm.score(raw, model, probes[j], exclude=(s, speakers[j]))
                out.append(Trial(group, s, speakers[j], score))
    return out


class CohortNorm:
    """AS-norm against a fixed cohort of impostor embeddings, leaving the trial's speakers out."""

    def __init__(self, cohort: np.ndarray, speakers: list[str], k: int) -> None:
        self.cohort, self.speakers, self.k = np.asarray(cohort, float), np.asarray(speakers), k

    def score(self, raw: float, model: np.ndarray, probe: np.ndarray, exclude: tuple[str, ...] = ()) -> float:
        from agent.evals.eer import as_norm

        keep = ~np.isin(self.speakers, exclude)
        c = self.cohort[keep]
        return as_norm(raw, c @ model, c @ probe, self.k)


def rates(ts: list[Trial], threshold: float) -> dict:
    g = np.array([t.score for t in ts if t.genuine])
    i = np.array([t.score for t in ts if not t.genuine])
    return {"threshold": round(threshold, 4), "genuine_trials": int(g.size), "impostor_trials": int(i.size),
            "genuine_refusals": int((g < threshold).sum()), "impostor_accepts": int((i >= threshold).sum()),
            "frr": round(float(np.mean(g < threshold)), 4) if g.size else None,
            "far": round(float(np.mean(i >= threshold)), 4) if i.size else None}


def summary(ts: list[Trial], grid: tuple[float, ...] = ()) -> dict:
    """Score ranges per group, and the pooled rates at each threshold of ``grid``."""
    out: dict = {}
    for g in dict.fromkeys(t.group for t in ts):
        gen = [t.score for t in ts if t.group == g and t.genuine]
        imp = [t.score for t in ts if t.group == g and not t.genuine]
        out[g] = {"genuine_trials": len(gen), "impostor_trials": len(imp),
                  "genuine_min_median": [round(min(gen), 3), round(float(np.median(gen)), 3)] if gen else None,
                  "impostor_median_max": [round(float(np.median(imp)), 3), round(max(imp), 3)] if imp else None}
    if grid:
        out["pooled"] = [rates(ts, t) for t in grid]
    return out


def choose_threshold(ts: list[Trial], step: float = 0.05) -> float:
    """The lowest threshold on a ``step`` grid above every impostor score of ``ts``."""
    top = max(t.score for t in ts if not t.genuine)
    return round(float(np.floor(top / step + 1e-9) * step + step), 4)


def _embed(vp: Any, utts: list[Utterance], min_speech_s: float, probe_s: float
           ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(speakers, whole-speech embeddings, first-``probe_s`` embeddings, has >= probe_s of speech)."""
    from tools.common.errors import MMChatError
    from tools.common.pcm import speech_only

    spk, whole, cut, ok = [], [], [], []
    for u in utts:
        try:
            speech = speech_only(u.audio, min_speech_s, u.name)
        except MMChatError:
            continue
        spk.append(u.speaker)
        whole.append(vp.embed(speech))
        cut.append(vp.embed(speech[:int(probe_s * SAMPLE_RATE)]))
        ok.append(speech.size >= probe_s * SAMPLE_RATE)
    return spk, np.stack(whole), np.stack(cut), np.asarray(ok)


REAL_GROUPS = ("sb", "fillets-cs", "fillets-nl")  # recorded by people on one channel (not simulated)
GRID = (0.33, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def measure_same_channel(vp: Any, by_group: dict[str, list[Utterance]], cohort: np.ndarray,
                         cohort_speakers: list[str], min_speech_s: float, configured: float | None,
                         probe_s: float = 2.0, ks: tuple[int, ...] = ()) -> dict:
    """Same-channel trials (raw, and AS-norm for each K of ``ks``) and the threshold chosen on them:
    the lowest 0.05 step above every impostor of the real recordings, first-``probe_s`` and whole probes."""
    cut_key = f"first_{probe_s:g}_s"
    scored: dict[str, dict[str, list[Trial]]] = {"raw": {cut_key: [], "whole": []}}
    scored.update({f"asnorm_k{k}": {cut_key: [], "whole": []} for k in ks})
    info = {}
    for name, utts in by_group.items():
        spk, whole, cut, ok = _embed(vp, utts, min_speech_s, probe_s)
        info[name] = {"speakers": sorted(set(spk)), "utterances": len(spk), "probes": int(ok.sum())}
        for kind in scored:
            norm = None if kind == "raw" else CohortNorm(cohort, cohort_speakers, int(kind.split("_k")[1]))
            for key, probes in ((cut_key, cut), ("whole", whole)):
                scored[kind][key] += trials(name, whole, probes, spk, ok, norm)
    real = [t for key in scored["raw"] for t in scored["raw"][key] if t.group in REAL_GROUPS]
    thr = choose_threshold(real)
    out: dict = {"protocol": f"each utterance vs the mean of the next {ENROL_N} of its speaker (genuine); every "
                             "such model vs the other speakers of its group, one channel (impostor); probes "
                             f"with >= {probe_s:g} s of speech, cut to it and whole", "groups": info,
                 "chosen": {"rule": "lowest 0.05 step above every impostor score of the real recordings "
                                    f"({', '.join(REAL_GROUPS)}), both probe lengths", "threshold": thr,
                            **{key: {"pooled": rates(ts, thr),
                                     "per_group": {g: rates([t for t in ts if t.group == g], thr) for g in info}}
                               for key, ts in scored["raw"].items()}}}
    if configured is not None:
        out["at_configured"] = {key: rates(ts, configured) for key, ts in scored["raw"].items()}
    for kind, by_key in scored.items():
        out[kind] = {key: summary(ts, GRID if kind == "raw" else ()) for key, ts in by_key.items()}
        if kind != "raw":  # normalised scores have their own scale: the same rule on them
            t = choose_threshold([x for ts in by_key.values() for x in ts if x.group in REAL_GROUPS], 0.5)
            out[kind]["chosen"] = {"threshold": t, **{key: rates(ts, t) for key, ts in by_key.items()}}
    return out
