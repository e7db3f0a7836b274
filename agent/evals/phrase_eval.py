"""How often the word rule (agent/identity/phrase.py) refuses the right words or accepts wrong ones.

Real recordings with transcripts: ``testdata/speech`` (2 speakers x 4 sentences) and the
Debian ``pocketsphinx-testdata`` ``librivox`` (5 read sentences) and ``cards`` (5 short
card names) sets. Each recording is transcribed once by the configured Whisper model.

* passphrase genuine: a transcript vs the ASR of its own recording (false refusal);
* passphrase impostor: a transcript vs the ASR of every other recording (false accept);
* near misses: the transcript with 1 or 2 words replaced, the first half only, or the words
  reversed, vs the ASR of the recording (how much difference the tolerance lets through);
* challenges: random words from the challenge list vs the ASR of every recording (false
  accept), and answers spoken by Piper (synthetic) and spliced from word cuts of the real
  recordings (real voices) vs their challenge (false refusal).

Run: ``python -m agent.evals.phrase_eval [--json] [--challenges N]``.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.common.audio_io import load_audio
from agent.evals.eer import POCKETSPHINX
from agent.identity.phrase import phrase_match, words
from tools.common.pcm import SAMPLE_RATE

SEED = 16


@dataclass(frozen=True)
class Recording:
    speaker: str
    name: str
    text: str
    audio: np.ndarray


def load_recordings(testdata: Path) -> list[Recording]:
    """The transcribed real recordings present on this machine."""
    recs = []
    with open(testdata / "speech" / "transcripts.csv", newline="") as f:
        for row in csv.DictReader(f):
            recs.append(Recording(row["speaker"], row["file"], row["text"],
                                  load_audio(testdata / "speech" / row["file"])))
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        path = POCKETSPHINX / folder / listing
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
            if m and (POCKETSPHINX / folder / f"{m[2]}.wav").is_file():
                recs.append(Recording(folder, f"{folder}/{m[2]}.wav", m[1].strip(),
                                      load_audio(POCKETSPHINX / folder / f"{m[2]}.wav")))
    return recs


def word_cuts(aligner: Any, audio: np.ndarray, min_letters: int = 5, fade_s: float = 0.01) -> dict[str, np.ndarray]:
    """Normalised word (>= ``min_letters``) -> its audio, first occurrence of each.

    Whisper word timestamps (``aligner``: a WhisperASR, best the larger model); a word runs from the
    midpoint of the pause before it to the midpoint of the pause after it, with short fades.
    """
    segments, _ = aligner.model.transcribe(audio, language="en", word_timestamps=True, beam_size=5,
                                           condition_on_previous_text=False)
    ws = [w for seg in segments for w in seg.words or []]
    cuts: dict[str, np.ndarray] = {}
    for k, w in enumerate(ws):
        start = (ws[k - 1].end + w.start) / 2 if k else w.start
        end = (w.end + ws[k + 1].start) / 2 if k + 1 < len(ws) else w.end
        norm = words(w.word)
        if len(norm) != 1 or len(norm[0]) < min_letters or not norm[0].isalpha() or norm[0] in cuts:
            continue
        x = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)].astype(np.float32)
        f = min(int(fade_s * SAMPLE_RATE), len(x) // 4)
        if f:
            x[:f] *= np.linspace(0, 1, f, dtype=np.float32)
            x[-f:] *= np.linspace(1, 0, f, dtype=np.float32)
        cuts[norm[0]] = x
    return cuts


def splice(parts: list[np.ndarray], gap_s: float = 0.5) -> np.ndarray:
    """Word cuts joined by short pauses, at a normal speaking level."""
    from tools.common.pcm import level

    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    out = [gap]
    for p in parts:
        out += [np.asarray(p, np.float32), gap]
    return level(np.concatenate(out))


def _rate(hits: int, n: int) -> dict[str, Any]:
    return {"n": n, "count": hits, "rate": round(hits / n, 4) if n else None}


def _perturb(ws: list[str], kind: str, rng: random.Random, vocab: list[str]) -> list[str]:
    ws = list(ws)
    if kind.startswith("replace"):
        for i in rng.sample(range(len(ws)), int(kind[-1])):
            ws[i] = rng.choice([v for v in vocab if v not in ws])
        return ws
    return ws[: max(1, len(ws) // 2)] if kind == "first_half" else ws[::-1]


def evaluate(recs: list[Recording], asr: Any, tolerance: float, challenge_words: list[str], n_challenges: int,
             length: int, tts: Any = None, aligner: Any = None) -> dict[str, Any]:
    rng = random.Random(SEED)
    heard = [words(asr.transcribe(r.audio).text) for r in recs]
    refs = [words(r.text) for r in recs]
    genuine = [phrase_match(refs[i], heard[i], tolerance)[0] for i in range(len(recs))]
    impostor = [(recs[i].name, recs[j].name) for i in range(len(recs)) for j in range(len(recs))
                if i != j and phrase_match(refs[i], heard[j], tolerance)[0]]
    n_imp = len(recs) * (len(recs) - 1)
    near: dict[str, dict[str, Any]] = {}
    for kind in ("replace1", "replace2", "first_half", "reversed"):  # the spoken words differ from the phrase
        trials = [(i, _perturb(heard[i], kind, rng, challenge_words)) for i in range(len(recs))
                  if len(refs[i]) >= (4 if kind != "replace2" else 6) and genuine[i]]
        near[kind] = _rate(sum(phrase_match(refs[i], p, tolerance)[0] for i, p in trials), len(trials))
    challenges = [rng.sample(challenge_words, length) for _ in range(n_challenges)]
    ch_fa = sum(phrase_match(words(" ".join(c)), h, tolerance)[0] for c in challenges for h in heard)
    out: dict[str, Any] = {
        "tolerance": tolerance, "recordings": len(recs), "asr_word_errors": [
            {"file": r.name, "errors": phrase_match(refs[i], heard[i], 0.0)[1], "words": len(refs[i])}
            for i, r in enumerate(recs)],
        "passphrase": {"false_refusal": _rate(genuine.count(False), len(genuine)),
                       "refused": [recs[i].name for i, ok in enumerate(genuine) if not ok],
                       "false_accept": _rate(len(impostor), n_imp), "accepted_wrong": impostor,
                       "near_miss_accepted": near},
        "challenge": {"false_accept_vs_recordings": _rate(ch_fa, len(challenges) * len(heard))},
    }
    if tts is not None:
        from agent.session.scripted import synth

        ok = sum(phrase_match(words(" ".join(c)), words(asr.transcribe(synth(tts, ", ".join(c) + ".")).text),
                              tolerance)[0] for c in challenges)
        out["challenge"]["piper_answers_refused"] = _rate(len(challenges) - ok, len(challenges))
    out["challenge"]["spliced_answers_refused"] = _spliced(recs, asr, aligner or asr, tolerance, rng, length)
    return out


def _spliced(recs: list[Recording], asr: Any, aligner: Any, tolerance: float, rng: random.Random, length: int,
             per_speaker: int = 10) -> dict[str, Any]:
    """Answers cut word by word from each speaker's own recordings, re-transcribed."""
    by_speaker: dict[str, dict[str, np.ndarray]] = {}
    for r in recs:
        cuts = by_speaker.setdefault(r.speaker, {})
        for w, a in word_cuts(aligner, r.audio).items():
            cuts.setdefault(w, a)
    refused = n = 0
    for cuts in by_speaker.values():
        if len(cuts) < 2 * length:
            continue
        for _ in range(per_speaker):
            ch = rng.sample(sorted(cuts), length)
            n += 1
            refused += not phrase_match(ch, words(asr.transcribe(splice([cuts[w] for w in ch])).text), tolerance)[0]
    return _rate(refused, n)


def aligner(settings: Any) -> Any:
    """The larger installed Whisper model for word timestamps (tiny.en's are loose), else the configured one."""
    from agent.listen.asr import WhisperASR
    from tools.common.errors import MMChatError

    try:
        return WhisperASR(settings.asr.model_copy(update={"model": "base"}), settings.models_dir)
    except MMChatError:
        return WhisperASR(settings.asr, settings.models_dir)


def main(argv: list[str] | None = None) -> int:
    from agent.common.config import load_settings
    from agent.identity.audio_key import load_words
    from agent.listen.asr import WhisperASR
    from agent.speak.tts import PiperTTS

    ap = argparse.ArgumentParser(prog="python -m agent.evals.phrase_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--challenges", type=int, default=30)
    ap.add_argument("--no-piper", action="store_true", help="skip the synthetic challenge answers")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    s = load_settings(args.config)
    recs = load_recordings(s.testdata_dir)
    tts = None if args.no_piper else PiperTTS(s.tts, s.models_dir)
    rep = evaluate(recs, WhisperASR(s.asr, s.models_dir), s.identity.phrase_tolerance,
                   load_words(s.path(s.identity.challenge_words)), args.challenges, s.identity.challenge_length, tts,
                   aligner(s))
    rep["asr_model"] = s.asr.model
    print(json.dumps(rep, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
