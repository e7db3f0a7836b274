"""Reading and writing audio files with clear errors for bad input."""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import soundfile as sf

from agent.common.saving import write_whole
from tools.common.errors import AudioError, ErrorCode
from tools.common.pcm import SAMPLE_RATE, resample, to_int16, to_mono_float

MIN_RATE, MAX_RATE = 4000, 384000  # sample rates a recording can have


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load WAV/FLAC/OGG/MP3 (or anything PyAV decodes) as float32 mono at ``sample_rate``.

    Raises AudioError with code audio-missing, audio-empty or audio-invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file not found: {p}", ErrorCode.AUDIO_MISSING)
    if p.stat().st_size == 0:
        raise AudioError(f"audio file is empty: {p}", ErrorCode.AUDIO_EMPTY)
    try:
        data, sr = sf.read(str(p), always_2d=False)
    except Exception:
        data, sr = _decode_with_av(p)
    if not MIN_RATE <= int(sr) <= MAX_RATE:  # a broken header: resampling from it could need gigabytes
        raise AudioError(f"audio sample rate {int(sr)} Hz is outside {MIN_RATE}-{MAX_RATE} Hz: {p}")
    audio = resample(to_mono_float(data), int(sr), sample_rate)
    if audio.size < sample_rate // 10:
        raise AudioError(f"audio is too short ({audio.size / sample_rate:.2f} s): {p}", ErrorCode.AUDIO_EMPTY)
    if not np.isfinite(audio).all():
        raise AudioError(f"audio has invalid samples: {p}")
    return audio


def _decode_with_av(p: Path) -> tuple[np.ndarray, int]:
    try:
        from faster_whisper.audio import decode_audio

        return decode_audio(str(p), sampling_rate=SAMPLE_RATE), SAMPLE_RATE
    except Exception as e:  # PyAV raises many types for junk input
        raise AudioError(f"cannot decode audio {p.name}: not a readable audio file ({type(e).__name__})") from None


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float or int16 mono audio as 16-bit PCM WAV, whole or not at all (agent.common.saving:
    StorageError when the disk is full)."""
    a = np.asarray(audio)
    a = to_int16(a) if a.dtype.kind == "f" else a
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(a.astype(np.int16).tobytes())
    return write_whole(path, buf.getvalue())
