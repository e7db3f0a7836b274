"""The loudspeaker on the stream clock: what we play, when, its echo, and barge-in.

Every time in the session is *stream time*: seconds of microphone audio released
by the source. Reply audio is scheduled on the same clock, so the session knows
exactly when the assistant is talking (to gate the wake word and ASR against its
own voice) and, for recordings, can mix that audio back into the input at the
speaker-to-mic coupling ``session.echo.gain`` -- the echo a real room would produce.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

import numpy as np

from agent.speak.speech_out import BufferSink
from tools.common.pcm import SAMPLE_RATE, resample

KEPT_INTERVALS = 256  # played stretches remembered for overlaps(): a long session's list stays bounded


class StreamClock:
    """Samples released by the source; waiters wake when it advances."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self.samples = 0
        self.cond = threading.Condition()

    @property
    def now(self) -> float:
        return self.samples / self.sample_rate

    def advance(self, n: int) -> None:
        with self.cond:
            self.samples += n
            self.cond.notify_all()


class Playback:
    """A timeline of scheduled reply audio (16 kHz) on the stream clock; thread-safe."""

    def __init__(self, clock: StreamClock, tail_s: float = 0.3) -> None:
        self.clock = clock
        self.tail_s = tail_s
        self._audio = np.zeros(0, np.float32)  # scheduled samples, starting at stream sample _start
        self._start = 0
        # (start, end) stream seconds actually played; the last few hundred (a turn looks back seconds)
        self.intervals: deque[tuple[float, float]] = deque(maxlen=KEPT_INTERVALS)
        self.closed = threading.Event()  # the source ended: the clock will not move again

    # -- scheduling (TTS thread) ---------------------------------------------------------
    def schedule(self, chunk: np.ndarray, sample_rate: int) -> tuple[int, int]:
        """Queue a chunk right after what is already queued (or now); return its sample span."""
        a = resample(np.asarray(chunk, np.float32), sample_rate, self.clock.sample_rate)
        with self.clock.cond:
            now = self.clock.samples
            end = self._start + len(self._audio)
            if end <= now:  # idle: start a new stretch now
                self._audio, self._start, end = np.zeros(0, np.float32), now, now
                self.intervals.append((now / self.clock.sample_rate, now / self.clock.sample_rate))
            self._audio = np.concatenate([self._audio, a])
            span = (end, end + len(a))
            self._set_end(span[1])
            self.clock.cond.notify_all()
        return span

    def _set_end(self, end_sample: int) -> None:
        s, _ = self.intervals[-1]
        self.intervals[-1] = (s, end_sample / self.clock.sample_rate)

    def wait_played(self, end_sample: int, cancel: threading.Event) -> int:
        """Block until the clock passes ``end_sample`` or ``cancel``; return the sample reached."""
        with self.clock.cond:
            while self.clock.samples < end_sample and not cancel.is_set() and not self.closed.is_set():
                self.clock.cond.wait(0.05)
            return min(self.clock.samples, end_sample)

    def stop(self) -> None:
        """Barge-in: drop everything not yet played."""
        with self.clock.cond:
            now = self.clock.samples
            if self._start + len(self._audio) > now:
                self._audio = self._audio[:max(0, now - self._start)]
                self._set_end(self._start + len(self._audio))
            self.clock.cond.notify_all()

    # -- reading (source and session threads) ---------------------------------------------
    def ahead(self) -> bool:
        """Audio is queued beyond the current clock (the speaker is busy)."""
        with self.clock.cond:
            return self._start + len(self._audio) > self.clock.samples

    def segment(self, start_sample: int, n: int) -> np.ndarray:
        """What the speaker emits over [start, start + n) (zeros where silent)."""
        out = np.zeros(n, np.float32)
        with self.clock.cond:
            lo, hi = max(start_sample, self._start), min(start_sample + n, self._start + len(self._audio))
            if hi > lo:
                out[lo - start_sample:hi - start_sample] = self._audio[lo - self._start:hi - self._start]
        return out

    def overlaps(self, t0: float, t1: float) -> bool:
        """Did we play anything (plus the echo tail) between stream times t0 and t1?"""
        with self.clock.cond:
            return any(s < t1 and t0 < e + self.tail_s for s, e in self.intervals if e > s)


class AudioOut(Protocol):
    """Physical output for scheduled chunks (none for recordings)."""

    def play(self, chunk: np.ndarray, sample_rate: int) -> None: ...
    def stop(self) -> None: ...


class SpeakerOut:
    """The default loudspeaker (sounddevice); ``play`` blocks, ``stop`` interrupts it."""

    def __init__(self) -> None:
        import sounddevice as sd

        self.sd = sd

    def play(self, chunk: np.ndarray, sample_rate: int) -> None:
        self.sd.play(chunk, sample_rate, blocking=True)

    def stop(self) -> None:
        self.sd.stop()


class PlaybackSink:
    """An AudioSink for SpeechWorker: schedules chunks, blocks while they play, records what was heard.

    ``write`` returns once the chunk has played on the stream clock (or on cancel),
    so SpeechWorker's sentence accounting reflects what the user actually heard.
    """

    def __init__(self, playback: Playback, cancel: threading.Event, out: AudioOut | None = None) -> None:
        self.playback = playback
        self.cancel = cancel
        self.out = out
        self.record = BufferSink()
        self.record.sample_rate = playback.clock.sample_rate

    def write(self, chunk: np.ndarray, sample_rate: int) -> None:
        if self.cancel.is_set():
            return
        start, end = self.playback.schedule(chunk, sample_rate)
        if self.out is not None:
            self.out.play(chunk, sample_rate)
        reached = self.playback.wait_played(end, self.cancel)
        self.record.write(self.playback.segment(start, max(0, reached - start)), self.record.sample_rate)

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        self.cancel.set()
        self.playback.stop()
        if self.out is not None:
            self.out.stop()
