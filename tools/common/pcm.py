"""PCM in one place: the project's sample rate, int16/float conversions, resampling, voiced parts.

Every stage works on 16 kHz mono: int16 frames on the stream, float32 in [-1, 1] for models.
"""
from __future__ import annotations

import numpy as np

from tools.common.errors import AudioError, ErrorCode

SAMPLE_RATE = 16000  # Hz: microphone frames, VAD, wake word, ASR, voiceprint
INT16_SCALE = 32768.0  # int16 -> float divisor; float -> int16 uses 32767 so +1.0 does not wrap


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 (int16 passes through)."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        return a
    return (np.clip(a, -1.0, 1.0) * (INT16_SCALE - 1)).astype(np.int16)


def to_float(audio: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1] (float passes through as float32)."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        return a.astype(np.float32) / INT16_SCALE
    return a.astype(np.float32, copy=False)


def to_mono_float(audio: np.ndarray) -> np.ndarray:
    """Any int/float PCM array (frames x channels or flat) -> float32 mono in [-1, 1]."""
    a = np.asarray(audio)
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        a = a.mean(axis=1)
    return a


def resample(audio: np.ndarray, src_sr: int, dst_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (exact for rational ratios)."""
    if src_sr == dst_sr:
        return audio
    from scipy.signal import resample_poly  # heavy import, only when resampling

    g = np.gcd(src_sr, dst_sr)
    return resample_poly(audio, dst_sr // g, src_sr // g).astype(np.float32)


def speech_only(audio: np.ndarray, min_speech_s: float, source: str = "audio") -> np.ndarray:
    """Keep the voiced parts (Silero VAD from faster-whisper); refuse too little speech."""
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    spans = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300), SAMPLE_RATE)
    voiced = sum(s["end"] - s["start"] for s in spans) / SAMPLE_RATE
    if voiced < min_speech_s:
        raise AudioError(f"too little speech in {source} ({voiced:.1f} s, need {min_speech_s:g} s)",
                         ErrorCode.NO_SPEECH)
    return np.concatenate(collect_chunks(audio, spans)[0])


def trim(audio: np.ndarray, rel: float = 0.1) -> np.ndarray:
    """Cut leading/trailing near-silence (below ``rel`` of the peak) so the phrase's times are known."""
    idx = np.flatnonzero(np.abs(audio) > rel * np.abs(audio).max())
    return audio[idx[0]:idx[-1] + 1] if idx.size else audio


def level(audio: np.ndarray, rms: float = 0.06) -> np.ndarray:
    """Scale to a normal speaking level (RMS ``rms``)."""
    return (audio * rms / max(float(np.sqrt(np.mean(audio ** 2))), 1e-6)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, np.float32)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0
