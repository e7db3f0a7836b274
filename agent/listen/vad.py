"""Voice activity: webrtcvad frames confirmed by Silero, and a turn state machine.

webrtcvad is fast but calls any loud broadband noise speech; Silero VAD (the
model bundled with faster-whisper) is not fooled by it. A frame counts as voiced
only when both agree, so noise neither starts a turn nor keeps one open.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Literal, Protocol

import numpy as np

from agent.common.config import VADSettings
from tools.common.pcm import SAMPLE_RATE, to_float, to_int16


class FrameClassifier(Protocol):
    def is_speech(self, frame: np.ndarray, in_speech: bool = False) -> bool:
        """One int16 frame in, speech or not out (may keep state; ``in_speech`` allows hysteresis)."""
        ...


class SileroStream:
    """faster-whisper's Silero ONNX model run incrementally (LSTM state kept between chunks)."""

    CHUNK = 512
    CONTEXT = 64

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self.session = get_vad_model().session
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(self.CONTEXT, np.float32)
        self.pending = np.zeros(0, np.float32)
        self.prob = 0.0

    def feed(self, frame: np.ndarray) -> float:
        """Add samples; return the speech probability of the latest complete 32 ms chunk."""
        self.pending = np.concatenate([self.pending, to_float(frame)])
        while len(self.pending) >= self.CHUNK:
            chunk, self.pending = self.pending[:self.CHUNK], self.pending[self.CHUNK:]
            x = np.concatenate([self.context, chunk])[None, :]
            out, self.h, self.c = self.session.run(None, {"input": x, "h": self.h, "c": self.c})
            self.context = chunk[-self.CONTEXT:]
            self.prob = float(np.ravel(out)[0])
        return self.prob


class DualVAD:
    """webrtcvad says "voiced" and Silero confirms it (with hysteresis once speech is on)."""

    def __init__(self, settings: VADSettings, sample_rate: int = SAMPLE_RATE) -> None:
        import webrtcvad

        self.settings = settings
        self.sample_rate = sample_rate
        self.webrtc = webrtcvad.Vad(settings.aggressiveness)
        self.silero = SileroStream()

    def is_speech(self, frame: np.ndarray, in_speech: bool = False) -> bool:
        prob = self.silero.feed(frame)  # always fed, so its state follows the stream
        threshold = self.settings.silero_threshold - (0.15 if in_speech else 0.0)
        return prob >= threshold and self.webrtc.is_speech(to_int16(frame).tobytes(), self.sample_rate)


@dataclass
class VADEvent:
    type: Literal["speech_start", "speech_pause", "speech_end"]
    time_s: float  # speech_start: start of speech; speech_pause / speech_end: end of speech so far
    start_s: float = 0.0  # of the returned audio (includes the pre-roll)
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)


class TurnDetector:
    """Frames in, ``speech_start`` / ``speech_end`` events out.

    Speech starts when ``start_ms`` of the last ``2 * start_ms`` are voiced; it ends
    after ``end_silence_ms`` of unvoiced frames (or at ``max_utterance_s``). The
    ``speech_end`` event carries the utterance from ``pre_roll_ms`` before the start. After
    ``pause_ms`` of silence inside a turn, ``speech_pause`` carries the audio so far: a turn that ends
    with no more speech ends at the same ``time_s``, so work started on the pause stands.
    """

    def __init__(self, settings: VADSettings, classifier: FrameClassifier | None = None,
                 sample_rate: int = SAMPLE_RATE) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.classifier = classifier or DualVAD(settings, sample_rate)
        self.frame_samples = sample_rate * settings.frame_ms // 1000
        self._start_frames = max(1, settings.start_ms // settings.frame_ms)
        self._end_frames = max(1, settings.end_silence_ms // settings.frame_ms)
        self._pre_frames = settings.pre_roll_ms // settings.frame_ms
        pause = settings.pause_ms // settings.frame_ms if settings.pause_ms else 0
        self._pause_frames = pause if 0 < pause < self._end_frames else 0
        self.reset()

    def reset(self, sample_index: int = 0) -> None:
        """Back to idle; ``sample_index`` is the stream position of the next frame."""
        self.pos = sample_index
        self.in_speech = False
        self._recent: collections.deque[tuple[np.ndarray, bool]] = collections.deque(
            maxlen=self._pre_frames + 2 * self._start_frames)
        self._utterance: list[np.ndarray] = []
        self._utt_start = 0
        self._speech_start = 0
        self._silent = 0

    def process(self, frame: np.ndarray) -> VADEvent | None:
        """Feed one frame; return an event when speech starts or a turn ends."""
        voiced = self.classifier.is_speech(frame, self.in_speech)
        self.pos += len(frame)
        if not self.in_speech:
            return self._idle(frame, voiced)
        self._utterance.append(frame)
        self._silent = 0 if voiced else self._silent + 1
        too_long = len(self._utterance) * len(frame) >= self.settings.max_utterance_s * self.sample_rate
        if self._silent >= self._end_frames or too_long:
            return self._finish()
        if self._pause_frames and self._silent == self._pause_frames:
            return self._utterance_event("speech_pause")
        return None

    def _idle(self, frame: np.ndarray, voiced: bool) -> VADEvent | None:
        self._recent.append((frame, voiced))
        window = list(self._recent)[-2 * self._start_frames:]
        if sum(v for _, v in window) < self._start_frames:
            return None
        first = next(i for i, (_, v) in enumerate(window) if v)
        n = len(self._recent)
        self._utterance = [f for f, _ in self._recent]
        self._utt_start = self.pos - n * len(frame)
        self._speech_start = self.pos - (len(window) - first) * len(frame)
        self._silent = 0
        self.in_speech = True
        return VADEvent("speech_start", self._speech_start / self.sample_rate,
                        self._utt_start / self.sample_rate)

    def _utterance_event(self, kind: Literal["speech_pause", "speech_end"]) -> VADEvent:
        keep = len(self._utterance) - max(0, self._silent - self._pre_frames)  # keep a short tail
        audio = to_float(np.concatenate(self._utterance[:keep]))
        end = self.pos - self._silent * self.frame_samples
        return VADEvent(kind, end / self.sample_rate, self._utt_start / self.sample_rate, audio)

    def _finish(self) -> VADEvent:
        event = self._utterance_event("speech_end")
        self.reset(self.pos)
        return event

    def flush(self) -> VADEvent | None:
        """End of stream: close an open turn."""
        return self._finish() if self.in_speech else None

    def events(self, frames: Iterable[np.ndarray]) -> Iterator[VADEvent]:
        """Run over a frame stream (a source) and yield every event, closing at the end."""
        for frame in frames:
            event = self.process(frame)
            if event is not None:
                yield event
        last = self.flush()
        if last is not None:
            yield last

