"""Equal error rate of the voiceprint on real recordings, and the threshold at EER.

Corpora (all recorded by real people outside this project):

* ``testdata/speech``: 2 speakers x 4 read sentences, 16 kHz.
* Debian ``pocketsphinx-testdata``: ``librivox/*.wav`` (one reader, 5 sentences)
  and ``cards/*.wav`` (one speaker, 5 utterances).
* Debian ``codec2-examples``: 8 kHz raw speech of several speakers; longer
  recordings are cut into up to four 3 s segments. Files that are prefixes,
  codec outputs or mixes of others (hts, hts1a, hts2a, m2400, f2400,
  ve9qrp_10s) and non-speech (modem, tones) are left out.

Every pair of utterances is a trial: same speaker -> genuine, else impostor.

The session compares a command with an enrolled user's *mean* embedding, so the
``enrolled`` figures follow that protocol too (whole probes, and probes cut to
their first 1 and 1.5 s of speech, as short commands are): for every speaker with at least
``ENROL_N + 1`` utterances, each utterance in turn is tested against the mean of
``ENROL_N`` others of the same speaker (genuine), and every speaker's model (its
first ``ENROL_N``) is tested against all other speakers' utterances (impostor).

``--norm asnorm`` also measures adaptive symmetric score normalisation (AS-norm):
each trial score is standardised by the mean/std of the top-K cohort scores of
both sides and the two are averaged. The cohort of a trial is every utterance of
the *other* speakers (both trial speakers left out), for each K of ``--cohort-k``.
The raw figures stay at the top level of the output; AS-norm ones are under ``asnorm``.
``same_channel`` (on unless ``--no-same-channel``): impostors on the owner's own channel
(agent/evals/same_channel.py) and the threshold chosen on them.
``--synthetic``: Piper and espeak-ng voices against every model (agent/evals/synthetic.py).
Run (agent/evals/voice_trust.py composes the report): ``python -m agent.evals.voice_trust [--json] [--norm asnorm] [--cohort-k 5,10,20] [--no-same-channel]
[--synthetic]``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from agent.common.audio_io import load_audio
from tools.common.pcm import SAMPLE_RATE, resample, to_mono_float

if TYPE_CHECKING:
    pass

POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
CODEC2 = Path("/usr/share/codec2/raw")
CODEC2_SPEAKERS = ("hts1", "hts2", "mmt1", "morig", "forig", "kristoff", "big_dog", "cross",
                   "cq_ref", "g3plx", "vk5qi", "ve9qrp")
SEGMENT_S = 3.0
MAX_SEGMENTS = 4
ENROL_N = 3  # utterances in an enrolled model (as main.py enroll with three --voice files)


@dataclass(frozen=True)
class Utterance:
    speaker: str
    name: str
    audio: np.ndarray  # float32 mono 16 kHz


@dataclass(frozen=True)
class EERResult:
    eer: float
    threshold: float  # score at the EER point (accept when score >= threshold)
    n_genuine: int
    n_impostor: int
    far_at_threshold: float
    frr_at_threshold: float

    def as_json(self) -> dict:
        return {"eer": round(self.eer, 4), "threshold": round(self.threshold, 4),
                "far_at_threshold": round(self.far_at_threshold, 4),
                "frr_at_threshold": round(self.frr_at_threshold, 4),
                "genuine_trials": self.n_genuine, "impostor_trials": self.n_impostor}


def compute_eer(genuine: list[float] | np.ndarray, impostor: list[float] | np.ndarray) -> EERResult:
    """EER and its threshold from genuine/impostor scores (higher = more alike)."""
    from sklearn.metrics import roc_curve

    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    if g.size == 0 or i.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    labels = np.r_[np.ones(g.size), np.zeros(i.size)]
    fpr, tpr, thr = roc_curve(labels, np.r_[g, i])
    fnr = 1.0 - tpr
    k = int(np.nanargmin(np.abs(fnr - fpr)))
    threshold = float(thr[k]) if np.isfinite(thr[k]) else float(g.max())
    far = float(np.mean(i >= threshold))
    frr = float(np.mean(g < threshold))
    return EERResult(float((fpr[k] + fnr[k]) / 2), threshold, int(g.size), int(i.size), far, frr)


def _segments(audio: np.ndarray, speaker: str, name: str) -> Iterator[Utterance]:
    step = int(SEGMENT_S * SAMPLE_RATE)
    n = min(MAX_SEGMENTS, max(1, audio.size // step))
    for k in range(n):
        part = audio if n == 1 else audio[k * step:(k + 1) * step]
        yield Utterance(speaker, f"{name}#{k}" if n > 1 else name, part)


def load_corpora(testdata: Path) -> list[Utterance]:
    """All utterances of the corpora that are present on this machine."""
    utts: list[Utterance] = []
    for f in sorted((testdata / "speech").glob("spk*_snt*.wav")):
        utts.append(Utterance("sb-" + f.stem.split("_")[0], f.name, load_audio(f)))
    for folder in ("librivox", "cards"):
        for f in sorted((POCKETSPHINX / folder).glob("*.wav")):
            utts.append(Utterance("ps-" + folder, f"{folder}/{f.name}", load_audio(f)))
    for stem in CODEC2_SPEAKERS:
        f = CODEC2 / f"{stem}.raw"
        if f.is_file():
            audio = resample(to_mono_float(np.fromfile(f, dtype="<i2")), 8000, SAMPLE_RATE)
            utts.extend(_segments(audio, "c2-" + stem, f"codec2/{stem}"))
    return utts


def score_trials(embeddings: np.ndarray, speakers: list[str]) -> tuple[list[float], list[float]]:
    """Cosine scores of every pair of utterances, split into genuine and impostor."""
    genuine: list[float] = []
    impostor: list[float] = []
    for a, b in itertools.combinations(range(len(speakers)), 2):
        s = float(embeddings[a] @ embeddings[b])
        (genuine if speakers[a] == speakers[b] else impostor).append(s)
    return genuine, impostor


def enrolled_trials(embeddings: np.ndarray, speakers: list[str], probes: np.ndarray | None = None,
                    n: int = ENROL_N) -> tuple[list[float], list[float]]:
    """Scores of single utterances against ``n``-utterance mean models (see the module docstring).

    ``probes``: the embeddings tested against the models (default: ``embeddings``; e.g. the same
    utterances cut short, to score short commands); models are always built from ``embeddings``.
    """
    from agent.identity.voiceprint import cosine_score

    e, spk = np.asarray(embeddings, float), np.asarray(speakers)
    p = e if probes is None else np.asarray(probes, float)
    genuine: list[float] = []
    impostor: list[float] = []
    for s in dict.fromkeys(speakers):
        own = np.flatnonzero(spk == s)
        if own.size < n + 1:
            continue
        for t in own:  # each utterance in turn, against the next n of the same speaker
            others = [i for i in np.roll(own, -int(np.flatnonzero(own == t)[0]))[1:]][:n]
            genuine.append(cosine_score(p[t], e[others]))
        model = e[own[:n]]
        impostor.extend(cosine_score(p[i], model) for i in np.flatnonzero(spk != s))
    return genuine, impostor


def enrolled_report(genuine: list[float], impostor: list[float], configured: float | None) -> dict:
    g, i = np.asarray(genuine), np.asarray(impostor)
    out = {**compute_eer(genuine, impostor).as_json(), "genuine_min": round(float(g.min()), 3),
           "impostor_max": round(float(i.max()), 3), **_separation(genuine, impostor)}
    if configured is not None:
        out["at_configured_threshold"] = {"threshold": configured, "far": round(float(np.mean(i >= configured)), 4),
                                          "frr": round(float(np.mean(g < configured)), 4)}
    return out


def as_norm(score: float, enrol_cohort: np.ndarray, test_cohort: np.ndarray, k: int) -> float:
    """AS-norm of one score from both sides' cohort scores, using the top ``k`` of each."""
    def stats(c: np.ndarray) -> tuple[float, float]:
        top = np.sort(np.asarray(c, float).ravel())[::-1][:k]
        return float(top.mean()), max(float(top.std()), 1e-6)

    (me, se), (mt, st) = stats(enrol_cohort), stats(test_cohort)
    return 0.5 * ((score - me) / se + (score - mt) / st)


def asnorm_trials(embeddings: np.ndarray, speakers: list[str], k: int) -> tuple[list[float], list[float]]:
    """AS-norm scores of every pair (as ``score_trials``), cohort = utterances of the other speakers."""
    e = np.asarray(embeddings, float)
    spk = np.asarray(speakers)
    sims = e @ e.T
    genuine: list[float] = []
    impostor: list[float] = []
    for a, b in itertools.combinations(range(len(speakers)), 2):
        cohort = (spk != spk[a]) & (spk != spk[b])
        if cohort.sum() < 2:
            raise ValueError("AS-norm needs at least two cohort utterances outside the trial speakers")
        s = as_norm(float(sims[a, b]), sims[a, cohort], sims[b, cohort], k)
        (genuine if speakers[a] == speakers[b] else impostor).append(s)
    return genuine, impostor


def _auc(genuine: list[float], impostor: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(genuine)), np.zeros(len(impostor))], np.r_[genuine, impostor]))


def _separation(genuine: list[float], impostor: list[float]) -> dict:
    """Numbers the EER point hides: AUC and impostors at or above the lowest two genuine scores."""
    g, i = np.sort(genuine), np.asarray(impostor)
    return {"auc": round(_auc(genuine, impostor), 4),
            "impostors_ge_lowest_genuine": [int((i >= g[0]).sum()), int((i >= g[min(1, g.size - 1)]).sum())]}


def asnorm_report(embeddings: np.ndarray, speakers: list[str], ks: tuple[int, ...]) -> dict:
    """EER etc. of AS-norm scores for each cohort size K, plus the raw scores' separation for comparison."""
    spk = np.asarray(speakers)
    sizes = [int(((spk != spk[a]) & (spk != spk[b])).sum())
             for a, b in itertools.combinations(range(len(speakers)), 2)]
    out: dict = {"cohort": "utterances of the other speakers (both trial speakers left out)",
                 "cohort_size_min_max": [min(sizes), max(sizes)],
                 "raw": _separation(*score_trials(embeddings, speakers)), "k": {}}
    for k in ks:
        genuine, impostor = asnorm_trials(embeddings, speakers, k)
        out["k"][str(k)] = {**compute_eer(genuine, impostor).as_json(), **_separation(genuine, impostor)}
    return out
