"""Wake-word measurement: false accepts per hour on real speech, detection rate on positives.

Negatives are real recordings with no wake word (pocketsphinx-testdata, the
speech files of codec2-examples, ``testdata/speech``), streamed back to back.
Positives are "hey jarvis" spoken by Piper and espeak-ng at several speeds and
pitches, with real speech before and after, clean and with the ALSA Noise.wav
at 20 and 10 dB SNR. Scores are recorded once per stream, so every threshold
is evaluated on the same traces. Run: ``python -m agent.evals.wake_eval``.

Real wake-free speech in the registries lasts minutes, not hours; ``--synthetic``
adds about an hour of synthetic speech (Debian's licence texts read by Piper and
espeak-ng voices) to bound false accepts per hour on *speech-like* audio. It is
reported apart from the real recordings.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings
from agent.listen.wakeword import CHUNK, WakeWordDetector
from tools.common.pcm import SAMPLE_RATE, level, resample, to_float, trim

NOISE_WAV = Path("/usr/share/sounds/alsa/Noise.wav")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
CODEC2_RAW = Path("/usr/share/codec2/raw")
WAKE_TEXTS = ("Hey Jarvis.", "Hey, Jarvis!", "hey jarvis")
CONFUSABLE_TEXTS = ("Hey Travis.", "Hey Charles.", "A jar of peas.", "Hey, service!", "Harvest time.")
CHUNK_S = CHUNK / SAMPLE_RATE
LICENCES = Path("/usr/share/common-licenses")
SYNTHETIC = (("piper", "GPL-3"), ("en-us", "Apache-2.0"), ("en-gb+m3", "LGPL-3"), ("en-us+f3", "MPL-2.0"))


def _raw(path: Path, sample_rate: int) -> np.ndarray:
    return resample(to_float(np.fromfile(path, dtype="<i2")), sample_rate)


def has_speech(audio: np.ndarray, min_fraction: float = 0.3) -> bool:
    """Silero (faster-whisper) finds speech in at least ``min_fraction`` of the recording."""
    from faster_whisper.vad import get_speech_timestamps

    spans = get_speech_timestamps(audio, min_speech_duration_ms=250)
    return sum(s["end"] - s["start"] for s in spans) >= min_fraction * len(audio)


def negative_recordings(settings: Settings) -> list[tuple[str, np.ndarray]]:
    """Real speech with no wake word; non-speech files (tones, modem data) are left out."""
    out = [(str(p), load_audio(p)) for p in sorted(POCKETSPHINX.rglob("*.wav"))]
    out += [(str(p), _raw(p, SAMPLE_RATE)) for p in sorted(POCKETSPHINX.rglob("*.raw"))]
    out += [(str(p), _raw(p, 8000)) for p in sorted(CODEC2_RAW.glob("*.raw"))]
    out += [(str(p), load_audio(p)) for p in sorted(CODEC2_RAW.glob("*.wav"))]
    out += [(str(p), load_audio(p)) for p in sorted((settings.testdata_dir / "speech").glob("*.wav"))]
    return [(name, a) for name, a in out if has_speech(a)]


def piper_phrases(settings: Settings, texts: tuple[str, ...], speeds: tuple[float, ...]) -> list[tuple[str, np.ndarray]]:
    from agent.speak.tts import PiperTTS

    out = []
    for speed in speeds:
        tts = PiperTTS(settings.tts.model_copy(update={"length_scale": speed}), settings.models_dir)
        for text in texts:
            audio = np.concatenate(list(tts.synthesize(text)))
            out.append((f"piper:{text}:{speed}", resample(audio, tts.sample_rate)))
    return out


def espeak_phrases(text: str = "hey jarvis", voices: tuple[str, ...] = ("en-us", "en-us+f3", "en-gb", "en-gb+m3"),
                   speeds: tuple[int, ...] = (130, 175), pitches: tuple[int, ...] = (35, 65)) -> list[tuple[str, np.ndarray]]:
    """espeak-ng (Debian package) renderings; empty when it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return []
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        for v in voices:
            for s in speeds:
                for p in pitches:
                    subprocess.run([exe, "-v", v, "-s", str(s), "-p", str(p), "-w", str(wav), text], check=True)
                    out.append((f"espeak:{v}:{s}:{p}", load_audio(wav)))
    return out


def synthetic_negatives(settings: Settings) -> list[tuple[str, np.ndarray]]:
    """Long wake-free speech: licence texts read by Piper and espeak-ng (whatever of them is installed)."""
    out = []
    for voice, name in SYNTHETIC:
        path = LICENCES / name
        if not path.is_file():
            continue
        text = " ".join(path.read_text(errors="ignore").split())
        assert "jarvis" not in text.lower()
        said = piper_phrases(settings, (text,), (1.0,)) if voice == "piper" else \
            espeak_phrases(text, voices=(voice,), speeds=(160,), pitches=(50,))  # 50: espeak-ng's default
        out += [(f"{label.split(':')[0]}:{voice}:{name}", level(audio)) for label, audio in said]
    return out


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float | None) -> np.ndarray:
    """Tile ``noise`` under ``audio`` at the given SNR (power of the whole signal)."""
    if snr_db is None:
        return audio
    n = np.resize(noise, len(audio))
    gain = np.sqrt(np.mean(audio ** 2) / (np.mean(n ** 2) * 10 ** (snr_db / 10)))
    return (audio + gain * n).astype(np.float32)


def hits(scores: np.ndarray, threshold: float, cooldown_s: float) -> list[int]:
    """Chunk indices where a streaming detector fires (threshold crossing outside the cooldown)."""
    out: list[int] = []
    for i in np.flatnonzero(scores >= threshold):
        if not out or (i - out[-1]) * CHUNK_S >= cooldown_s:
            out.append(int(i))
    return out


@dataclass
class Positive:
    name: str
    scores: np.ndarray
    wake_start_s: float
    wake_end_s: float


def make_positives(settings: Settings, negatives: list[tuple[str, np.ndarray]], snrs: tuple, seed: int = 0,
                   wake_phrases: list[tuple[str, np.ndarray]] | None = None) -> list[tuple[str, np.ndarray, float, float]]:
    """Real speech + a wake phrase + real speech (the "question"), at each SNR."""
    rng = np.random.default_rng(seed)
    noise = load_audio(NOISE_WAV)
    phrases = wake_phrases if wake_phrases is not None else (
        piper_phrases(settings, WAKE_TEXTS, (0.85, 1.0, 1.2)) + espeak_phrases())
    short = [a for _, a in negatives if len(a) < 12 * SAMPLE_RATE]
    out = []
    for name, phrase in phrases:
        for snr in snrs:
            before = short[rng.integers(len(short))][-int(2 * SAMPLE_RATE):]
            after = short[rng.integers(len(short))][:int(3 * SAMPLE_RATE)]
            gap1, gap2 = (np.zeros(int(g * SAMPLE_RATE), np.float32) for g in rng.uniform(0.15, 0.6, 2))
            wake = level(trim(phrase))
            parts = [level(before), gap1, wake, gap2, level(after)]
            start = (len(parts[0]) + len(gap1)) / SAMPLE_RATE
            clip = add_noise(np.concatenate(parts), noise, snr)
            out.append((f"{name}@{snr or 'clean'}", clip, start, start + len(wake) / SAMPLE_RATE))
    return out


def evaluate(settings: Settings, thresholds: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
             snrs: tuple = (None, 20, 10), window_after_s: float = 1.0, synthetic: bool = False) -> dict:
    """False accepts/hour and detection rate for each threshold (see module docstring)."""
    det = WakeWordDetector(settings.wake)
    cooldown = settings.wake.cooldown_s
    negatives = negative_recordings(settings)
    noise = load_audio(NOISE_WAV)
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    stream = np.concatenate([x for _, a in negatives for x in (a, gap)])
    neg_traces = {f"{snr or 'clean'}": det.scores(add_noise(stream, noise, snr)) for snr in snrs}
    neg_hours = len(stream) / SAMPLE_RATE / 3600

    positives = [Positive(n, det.scores(clip), s, e) for n, clip, s, e in make_positives(settings, negatives, snrs)]
    confusables = [det.scores(level(a)).max() for _, a in piper_phrases(settings, CONFUSABLE_TEXTS, (1.0,))]
    synth = synthetic_negatives(settings) if synthetic else []
    synth_traces = [det.scores(a) for _, a in synth]
    synth_hours = sum(len(a) for _, a in synth) / SAMPLE_RATE / 3600

    table = []
    for th in thresholds:
        fa = {k: len(hits(tr, th, cooldown)) for k, tr in neg_traces.items()}
        found = extra = 0
        for p in positives:
            times = [i * CHUNK_S - 1.0 for i in hits(p.scores, th, cooldown)]  # 1 s padding
            ok = [t for t in times if p.wake_start_s <= t <= p.wake_end_s + window_after_s]
            found += bool(ok)
            extra += len(times) - len(ok[:1])
        table.append({"threshold": th, "false_accepts": fa,
                      "false_accepts_per_hour": round(sum(fa.values()) / (neg_hours * len(snrs)), 2),
                      "detection_rate": round(found / len(positives), 4),
                      "false_accepts_in_positives": extra,
                      "confusable_accepts": int(sum(c >= th for c in confusables))})
        if synth:
            n = sum(len(hits(tr, th, cooldown)) for tr in synth_traces)
            table[-1].update(synthetic_false_accepts=n, synthetic_false_accepts_per_hour=round(n / synth_hours, 2))
    neg_max = {k: round(float(tr.max()), 3) for k, tr in neg_traces.items()}
    return {"negative_files": len(negatives), "negative_hours": round(neg_hours, 4),
            "negative_hours_all_conditions": round(neg_hours * len(snrs), 4), "negative_max_score": neg_max,
            "n_positives": len(positives), "positive_peak_p5": round(float(np.percentile([p.scores.max() for p in positives], 5)), 3),
            "confusable_max_scores": [round(float(c), 3) for c in confusables],
            "cooldown_s": cooldown, "table": table,
            **({"synthetic_negatives": [n for n, _ in synth], "synthetic_hours": round(synth_hours, 3),
                "synthetic_max_score": round(max(float(t.max()) for t in synth_traces), 3)} if synth else {}),
            "misses_at_configured_threshold": [p.name for p in positives
                                               if not hits(p.scores, settings.wake.threshold, cooldown)]}


def frame_latency(settings: Settings, audio: np.ndarray) -> dict:
    """Milliseconds of compute per frame for the VAD and the wake word (median, p90, n)."""
    from agent.listen.sources import FileSource
    from agent.listen.vad import TurnDetector

    vad, wake = TurnDetector(settings.vad), WakeWordDetector(settings.wake)
    times: dict[str, list[float]] = {"vad": [], "wake": []}
    for frame in FileSource(audio, frame_ms=settings.vad.frame_ms):
        for name, stage in (("vad", vad), ("wake", wake)):
            t0 = time.perf_counter()
            stage.process(frame)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {f"{k}_ms_per_{settings.vad.frame_ms}ms_frame": {
        "mean": round(float(np.mean(v)), 3), "median": round(float(np.median(v)), 3), "p90": round(float(np.percentile(v, 90)), 3),
        "max": round(float(np.max(v)), 2), "n": len(v), "unit": "ms"} for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    from agent.common.config import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--latency-only", action="store_true", help="only time the VAD and wake word per frame")
    ap.add_argument("--synthetic", action="store_true", help="add ~1 h of synthetic wake-free speech (slow)")
    args = ap.parse_args(argv)
    settings = load_settings(args.config)
    result = {} if args.latency_only else evaluate(settings, synthetic=args.synthetic)
    result["latency"] = frame_latency(settings, _raw(CODEC2_RAW / "ve9qrp.raw", 8000))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
