"""Reply audio: a TTS worker thread that speaks sentences as they arrive.

Sentences from the controller go into a queue; the worker synthesises each and
writes it to a sink (WAV file, speaker) while the LLM keeps generating. A
cancel (barge-in) drops what is queued and stops after the current chunk; the
worker records which sentences were actually played so the stored reply can be
trimmed to them.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.common.audio_io import write_wav
from agent.speak.tts import TTS

_DONE = object()


class AudioSink(Protocol):
    def write(self, chunk: np.ndarray, sample_rate: int) -> None: ...
    def close(self) -> None: ...


class BufferSink:
    """Keeps all audio in memory; ``save`` writes it as one WAV."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.sample_rate = 22050

    def write(self, chunk: np.ndarray, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.chunks.append(chunk)

    def close(self) -> None:
        pass

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)

    def save(self, path: str | Path) -> Path:
        return write_wav(path, self.audio, self.sample_rate)


class SpeechWorker:
    """One thread: sentence queue -> TTS -> sink. Start, ``say`` sentences, ``finish``."""

    def __init__(self, tts: TTS, sink: AudioSink, cancel: threading.Event | None = None) -> None:
        self.tts = tts
        self.sink = sink
        self.cancel = cancel or threading.Event()
        self.spoken: list[str] = []
        self.first_audio_at: float | None = None  # perf_counter of the first chunk
        self.started: list[float] = []  # perf_counter of each sentence's first chunk, in order
        self.error: BaseException | None = None
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tts", daemon=True)
        self._thread.start()

    def say(self, sentence: str) -> None:
        if not self.cancel.is_set():
            self._q.put(sentence)

    def finish(self, timeout: float | None = None) -> list[str]:
        """Wait until everything queued is spoken (or cancelled); return what was spoken."""
        self._q.put(_DONE)
        self._thread.join(timeout)
        self.sink.close()
        return self.spoken

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if self.cancel.is_set():
                continue
            try:
                first = True
                for chunk in self.tts.synthesize(item):
                    if self.cancel.is_set():
                        break
                    if first:
                        self.started.append(time.perf_counter())
                        first = False
                    if self.first_audio_at is None:
                        self.first_audio_at = self.started[0]
                    self.sink.write(chunk, self.tts.sample_rate)
                else:
                    if not self.cancel.is_set():  # cut off mid-sentence: not counted as spoken
                        self.spoken.append(item)
            except Exception as e:  # keep the worker alive; report after the turn
                self.error = e
