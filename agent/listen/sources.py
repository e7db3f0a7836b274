"""Audio sources: fixed-size 16 kHz int16 frames from a file or the microphone.

Both sources are iterables of frames, so the VAD and wake word see the same
stream whether it comes from a recording (paced like a live device, or as
fast as possible for tests and benchmarks) or from a microphone.
"""
from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from agent.common.audio_io import load_audio
from tools.common.devices import Backoff, Reconnector
from tools.common.errors import ErrorCode, MMChatError
from tools.common.pcm import SAMPLE_RATE, to_float, to_int16

MICROPHONE = "microphone"  # the device's name in its DeviceStatus


class AudioSource(Protocol):
    """An iterable of mono int16 frames of ``frame_samples`` at ``sample_rate``; ``reconnect`` is a live
    device's state and reopening (MicSource), None for recordings."""

    sample_rate: int
    frame_samples: int

    @property
    def reconnect(self) -> Reconnector | None: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...


def frames_of(audio: np.ndarray, frame_samples: int) -> Iterator[np.ndarray]:
    """Split audio into int16 frames; the last partial frame is zero-padded."""
    pcm = to_int16(audio)
    for start in range(0, len(pcm), frame_samples):
        frame = pcm[start:start + frame_samples]
        if len(frame) < frame_samples:
            frame = np.pad(frame, (0, frame_samples - len(frame)))
        yield frame


class FileSource:
    """A recording (any format load_audio reads, or an array) streamed as frames.

    With ``realtime=True`` each frame is released at its wall-clock time, like a
    microphone; with ``False`` the same code runs without sleeping.
    """

    reconnect = None

    def __init__(self, audio: str | Path | np.ndarray, frame_ms: int = 30, realtime: bool = False,
                 sample_rate: int = SAMPLE_RATE) -> None:
        self.audio = load_audio(audio, sample_rate) if isinstance(audio, (str, Path)) else to_float(audio)
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.realtime = realtime

    def __len__(self) -> int:
        return -(-len(self.audio) // self.frame_samples)

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = frames_of(self.audio, self.frame_samples)
        return paced(frames, self.frame_samples / self.sample_rate) if self.realtime else frames


def paced(frames: Iterable[np.ndarray], period_s: float) -> Iterator[np.ndarray]:
    """Release each frame at its wall-clock time, as a microphone would (a frame exists once recorded)."""
    t0 = time.monotonic()
    for i, frame in enumerate(frames):
        delay = t0 + (i + 1) * period_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield frame


def default_input_device() -> int:
    """Index of the default input device; DEVICE error when there is none."""
    try:
        import sounddevice as sd

        info = sd.query_devices(kind="input")
    except Exception:  # PortAudio missing, or no input device at all
        info = None
    if not info or int(info.get("max_input_channels", 0)) < 1:
        raise MMChatError("no microphone found; use --audio FILE", ErrorCode.DEVICE)
    return int(info["index"])


class InputStream(Protocol):
    """What the microphone source needs of ``sounddevice.InputStream``: start and close."""

    def start(self) -> None: ...
    def close(self) -> None: ...


class StreamFactory(Protocol):
    """Opens an input stream calling ``callback(indata, frames, time, status)`` per block and
    ``finished_callback()`` when the stream ends on its own (an error, a device gone)."""

    def __call__(self, callback: Callable[..., None], finished_callback: Callable[[], None]) -> InputStream: ...


def sounddevice_stream(sample_rate: int, frame_samples: int, device: int | None) -> StreamFactory:
    """The real microphone: a PortAudio input stream of mono int16 blocks of ``frame_samples``."""
    def open_stream(callback: Callable[..., None], finished_callback: Callable[[], None]) -> InputStream:
        import sounddevice as sd

        return sd.InputStream(samplerate=sample_rate, blocksize=frame_samples, channels=1, dtype="int16",
                              device=device, callback=callback, finished_callback=finished_callback)
    return open_stream


_ENDED = object()  # put by finished_callback: the stream stopped on its own


class MicSource:
    """The default microphone via sounddevice (PortAudio), frames from its callback.

    The first open failing is a DEVICE error. Later, when the stream ends on its own or delivers
    nothing for ``stall_s``, the source yields silence frames (paced in real time) while it reopens the
    stream with back-off; ``reconnect`` tells its listeners (the session) down / reconnecting / up.
    ``stream_factory``: how a stream is opened (default: sounddevice; a fake in tests).
    """

    def __init__(self, frame_ms: int = 30, sample_rate: int = SAMPLE_RATE, device: int | None = None,
                 stream_factory: StreamFactory | None = None, stall_s: float = 1.0,
                 backoff: Backoff | None = None) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        if stream_factory is None:
            device = default_input_device() if device is None else device
            stream_factory = sounddevice_stream(sample_rate, self.frame_samples, device)
        self.device, self.stream_factory, self.stall_s = device, stream_factory, stall_s
        self.reconnect = Reconnector(MICROPHONE, backoff)
        self._q: queue.Queue = queue.Queue(maxsize=1000)

    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        try:
            self._q.put_nowait(indata[:, 0].copy())
        except queue.Full:  # consumer stalled: drop rather than block the audio thread
            pass

    def _finished(self) -> None:
        try:
            self._q.put_nowait(_ENDED)
        except queue.Full:
            pass

    def _open(self) -> InputStream:
        stream = self.stream_factory(self._callback, self._finished)
        try:
            stream.start()
        except BaseException:
            stream.close()
            raise
        return stream

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            stream: InputStream | None = self._open()
        except Exception as e:
            raise MMChatError(f"cannot open the microphone ({e}); use --audio FILE", ErrorCode.DEVICE) from None
        period = self.frame_samples / self.sample_rate
        silence = np.zeros(self.frame_samples, np.int16)
        next_t = time.monotonic()  # when the next silence frame is due (while down)
        try:
            while True:
                if stream is not None:
                    try:
                        item = self._q.get(timeout=self.stall_s)
                    except queue.Empty:
                        item, why = None, f"no audio for {self.stall_s:.1f} s"
                    else:
                        why = "the input stream stopped"
                    if isinstance(item, np.ndarray):
                        yield item
                        continue
                    _close(stream)
                    stream = None
                    self.reconnect.lost(why)
                    yield from [silence] * int((self.stall_s if item is None else 0) / period)  # the gap
                    next_t = time.monotonic()
                yield silence  # while down: silence on the wall clock, so the session's time goes on
                next_t += period
                time.sleep(max(next_t - time.monotonic(), 0.0))
                stream = self.reconnect.attempt(self._open)
        finally:
            if stream is not None:
                _close(stream)


def _close(stream: InputStream) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - a dead stream may fail to close; it is dropped either way
        pass
