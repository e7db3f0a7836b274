"""The browser's media on the session's terms: its microphone as an AudioSource, its camera as a
FrameSource, and the reply audio as an outgoing track (aiortc; resampling by PyAV, no codec code here).

Nothing queues without bound: the microphone buffer keeps the last ``max_s`` seconds, the camera keeps
only its newest decoded frame (older ones are dropped and counted), the reply buffer is cleared on a
barge-in or when the connection closes.
"""
from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

log = logging.getLogger(__name__)
REPLY_RATE = 48_000  # Opus runs at 48 kHz
REPLY_PTIME_S = 0.02  # 20 ms packets
JITTER_S = 0.25  # the microphone may lag this long before silence stands in for it


def _mono_s16(frames: list[AudioFrame]) -> np.ndarray:
    parts = [f.to_ndarray().reshape(-1) for f in frames]
    return np.concatenate(parts).astype(np.int16, copy=False) if parts else np.zeros(0, np.int16)


class MicSource:
    """An AudioSource (``agent.listen.sources``) fed by the browser's audio track.

    Frames are released on the wall clock as they arrive; when the browser sends nothing for
    ``JITTER_S`` a frame of silence stands in, so the session's clock (timeouts, face checks) keeps
    running for a tab that sends no audio. ``received_s`` / ``silent_frames`` say what came.
    ``wall_time`` maps stream time to when that audio arrived: a session that falls behind (two
    clients on two cores) or loses buffered audio still looks at the camera frames of that moment.
    """

    reconnect = None  # the browser's track: the peer connection's own state tells when it goes

    def __init__(self, frame_ms: int = 30, sample_rate: int = 16_000, max_s: float = 10.0,
                 on_start: Callable[[], object] | None = None) -> None:
        """Audio before the session reads the first frame is dropped (stream time 0 is then, on the wall
        clock, as the face gate assumes); ``on_start`` is called at that moment."""
        self.sample_rate, self.frame_samples = sample_rate, sample_rate * frame_ms // 1000
        self.on_start = on_start
        self.listening = False
        self.max_samples = int(max_s * sample_rate)
        self._buf = np.zeros(0, np.int16)
        self._cond = threading.Condition()
        self._resampler = AudioResampler(format="s16p", rate=sample_rate)  # channels kept: averaged below
        self.closed = False
        self.received = self.dropped = self.silent_frames = 0
        self.read_samples = 0  # handed to the session: its stream time x the rate
        self._anchor: tuple[float, float] | None = None  # (stream s, monotonic s its audio arrived)

    @property
    def received_s(self) -> float:
        return self.received / self.sample_rate

    def push(self, frame: AudioFrame) -> None:
        """One decoded frame from the track (any rate/layout): 16 kHz mono int16 (PyAV resamples)."""
        planes = [f.to_ndarray() for f in self._resampler.resample(frame)]  # (channels, n) each
        pcm = (np.concatenate(planes, axis=1).mean(axis=0).astype(np.int16) if planes
               else np.zeros(0, np.int16))  # the channels' mean: Opus decodes to stereo, at the mono level
        with self._cond:
            self.received += len(pcm)
            if not self.listening:
                return
            buf = np.concatenate([self._buf, pcm])
            if len(buf) > self.max_samples:  # the session stalled: keep the newest audio only
                self.dropped += len(buf) - self.max_samples
                buf = buf[-self.max_samples:]
            self._buf = buf
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wall_time(self, t: float) -> float | None:
        """The monotonic time the audio at stream time ``t`` arrived (from the newest frame read, whose
        end arrived ``behind`` the buffer's newest audio); None before the first frame."""
        anchor = self._anchor
        return None if anchor is None else anchor[1] + (t - anchor[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        n, period = self.frame_samples, self.frame_samples / self.sample_rate
        with self._cond:
            self.listening = True
        if self.on_start is not None:
            self.on_start()
        next_t = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: len(self._buf) >= n or self.closed,
                                    max(0.0, next_t + JITTER_S - time.monotonic()))
                if self.closed:
                    return
                if len(self._buf) >= n:
                    frame, self._buf = self._buf[:n], self._buf[n:]
                else:
                    frame = None
                behind = len(self._buf) / self.sample_rate  # audio that arrived after this frame's end
                self.read_samples += n
                self._anchor = (self.read_samples / self.sample_rate, time.monotonic() - behind)
            if frame is None:  # nothing arrived in time: silence keeps the clock going
                self.silent_frames += 1
                frame = np.zeros(n, np.int16)
                delay = next_t + period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            next_t = max(next_t + period, time.monotonic() - JITTER_S)
            yield frame


class CameraFrames:
    """A FrameSource (``tools.vision.camera``) over the browser's video track: the newest frame only.

    ``offer`` (event loop) replaces an unread frame, counting it in ``dropped``; ``read`` (camera
    thread) converts just the frames it takes, scaled down to ``max_width`` (a 4K camera costs no more
    than a 720p one after decoding) and at most ``max_fps`` a second.
    """

    fps = None  # the track paces itself
    reconnect = None  # the browser's track: the peer connection's own state tells when it goes

    def __init__(self, max_width: int = 960, max_fps: float = 12.0) -> None:
        self.max_width, self.min_dt = max_width, 1.0 / max_fps
        self._cond = threading.Condition()
        self._frame: Any = None  # the newest av.VideoFrame
        self._last_read = 0.0
        self.closed = False
        self.received = self.dropped = self.read_count = 0
        self.size: tuple[int, int] | None = None  # the browser's frame size

    def offer(self, frame: object) -> None:
        with self._cond:
            self.dropped += self._frame is not None
            self._frame = frame
            self.received += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def read(self) -> np.ndarray | None:
        wait = self._last_read + self.min_dt - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with self._cond:
            while self._frame is None and not self.closed:
                self._cond.wait(0.5)
            frame, self._frame = self._frame, None
        if frame is None:
            return None
        self._last_read = time.monotonic()
        self.read_count += 1
        w, h = frame.width, frame.height
        self.size = (w, h)
        if w > self.max_width:
            w, h = self.max_width, max(2, round(h * self.max_width / w / 2) * 2)
        return frame.to_ndarray(format="bgr24", width=w, height=h)


class ReplyTrack(MediaStreamTrack):
    """The assistant's voice to the browser.

    ``play`` queues a TTS chunk (resampled to 48 kHz by PyAV) and returns: the session's playback
    timeline already waits on the stream clock. ``clear`` drops what is not yet sent (barge-in).
    ``recv`` paces 20 ms frames in real time, silence when nothing is queued.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._buf = np.zeros(0, np.int16)
        self._lock = threading.Lock()
        self._resampler: tuple[int, AudioResampler] | None = None
        self._start: float | None = None
        self._pts = 0
        self.queued_s = self.sent_s = 0.0

    def play(self, chunk: np.ndarray, sample_rate: int) -> None:
        a = np.asarray(chunk, np.float32).reshape(1, -1)
        if a.size == 0:
            return
        if self._resampler is None or self._resampler[0] != sample_rate:
            self._resampler = (sample_rate, AudioResampler(format="s16", layout="mono", rate=REPLY_RATE))
        frame = AudioFrame.from_ndarray(np.clip(a, -1.0, 1.0), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        pcm = _mono_s16(self._resampler[1].resample(frame))
        with self._lock:
            self._buf = np.concatenate([self._buf, pcm])
            self.queued_s += len(pcm) / REPLY_RATE

    def clear(self) -> None:
        """Drop the unsent reply."""
        with self._lock:
            self._buf = np.zeros(0, np.int16)

    def stop(self) -> None:
        self.clear()
        super().stop()

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = int(REPLY_RATE * REPLY_PTIME_S)
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / REPLY_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        with self._lock:
            pcm, self._buf = self._buf[:n], self._buf[n:]
        self.sent_s += len(pcm) / REPLY_RATE
        if len(pcm) < n:
            pcm = np.pad(pcm, (0, n - len(pcm)))
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = REPLY_RATE, self._pts, fractions.Fraction(1, REPLY_RATE)
        self._pts += n
        return frame


class ReplyOut:
    """The session's loudspeaker (``agent.speak.playback.AudioOut``) on a :class:`ReplyTrack`."""

    def __init__(self, track: ReplyTrack) -> None:
        self.track = track

    def play(self, chunk: np.ndarray, sample_rate: int) -> None:
        self.track.play(chunk, sample_rate)

    def stop(self) -> None:
        self.track.clear()


async def consume(track: MediaStreamTrack, sink: MicSource | CameraFrames) -> None:
    """Pull every frame of a remote track into ``sink`` until the track ends (then close the sink)."""
    put = sink.push if isinstance(sink, MicSource) else sink.offer
    try:
        while True:
            put(await track.recv())
    except MediaStreamError:
        pass
    except Exception as e:  # noqa: BLE001 - a broken track ends this client's input, not the server
        log.warning("%s track stopped: %s: %s", track.kind, type(e).__name__, e)
    finally:
        sink.close()
