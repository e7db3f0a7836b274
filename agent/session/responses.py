"""The reply stage's job function: a ReplyJob through the one reply path into playback."""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.common.saving import StorageError
from agent.session.stages import Stats
from agent.speak.playback import AudioOut, Playback, PlaybackSink
from agent.speak.reply import Reply, ReplyJob, ReplyKind, ReplyPath

log = logging.getLogger(__name__)


class Hold:
    """Set while a gate check or a reply runs: the camera stage then analyses one frame a second.

    On two cores every frame analysed meanwhile is CPU taken from the voice + face check, the LLM
    and TTS. A count, so overlapping jobs (a check during a reply) keep it set until both end.
    """

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def __enter__(self) -> "Hold":
        with self._lock:
            self._n += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._n -= 1

    def is_set(self) -> bool:
        return self._n > 0


class Responses:
    """The controller stage's job function: a ReplyJob through the one reply path into playback."""

    def __init__(self, replies: ReplyPath, playback: Playback, out: AudioOut | None, run_dir: Path | None,
                 stats: Stats, hold: Hold | None = None) -> None:
        """``hold``: held while a reply runs (the camera stage slows down to leave the CPU to it)."""
        self.replies, self.playback, self.out, self.hold = replies, playback, out, hold
        self.run_dir, self.stats = run_dir, stats
        self.current: PlaybackSink | None = None
        self.n = 0

    def __call__(self, job: ReplyJob) -> "Spoken":
        sink = PlaybackSink(self.playback, threading.Event(), self.out)
        self.current = sink
        try:
            with self.hold or contextlib.nullcontext():
                reply = self.replies.run(job, sink, sink.cancel)
        finally:
            self.current = None
        if reply.first_audio_s is not None and job.kind is ReplyKind.REPLY:
            self.stats.add("voice_to_voice", reply.first_audio_s)
        audio = save_error = None
        if self.run_dir is not None and sink.record.chunks:
            self.n += 1
            try:
                audio = str(sink.record.save(self.run_dir / f"{self.n:02d}-{job.kind.value}.wav"))
            except StorageError as e:  # e.g. the disk is full: the reply was heard; the session goes on
                log.warning("%s: %s", e.code.value, e)
                save_error = str(e)
        return Spoken(reply, audio, save_error)

    def interrupt(self) -> bool:
        sink = self.current
        if sink is None or sink.cancel.is_set():
            return False
        sink.interrupt()
        return True


@dataclass(frozen=True)
class Spoken:
    """A reply as the session logs it: what was heard, and where its audio was saved."""

    reply: Reply
    audio: str | None
    save_error: str | None = None  # why the audio could not be saved (StorageError), else None
