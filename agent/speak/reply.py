"""The one reply path: words (or a fixed line) -> controller -> streamed TTS -> a sink.

The hands-free session, ``main.py turn``, ``main.py ask`` and ``serve`` all answer through
:class:`ReplyPath`, so what the benchmarks measure is what users hear: controller errors are
spoken the same way everywhere, a barge-in trims the stored reply to what was heard, and
the voice-to-voice clock (end of the user's speech -> first reply audio) is read in one place.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Protocol

from agent.common.phrases import FALLBACK_FAILED, SPOKEN_ERRORS
from agent.identity.preferences import Preferences
from agent.speak.speech_out import AudioSink, SpeechWorker
from agent.speak.tts import TTS
from agent.think.controller import TurnResult
from tools.common.errors import MMChatError

log = logging.getLogger(__name__)



class ReplyKind(str, Enum):
    """What a reply job says: the controller's answer, or a fixed line said as it is."""

    REPLY = "reply"
    REFUSAL = "refusal"
    GOODBYE = "goodbye"
    NOTICE = "notice"


class Responder(Protocol):
    """The controller: one utterance in, a TurnResult out, sentences streamed to ``on_sentence``."""

    def respond(self, text: str, emotion: str | None = None, on_sentence: Callable[[str], None] | None = None,
                cancel: threading.Event | None = None, max_sentences: int | None = None) -> TurnResult: ...

    def style_cap(self, emotion: str | None = None) -> int:
        """The default sentence cap for ``emotion`` (a user's reply length adds to it)."""
        ...


@dataclass(frozen=True)
class ReplyJob:
    """One thing to say. ``heard_at``: perf_counter at the end of the user's speech (None: now)."""

    kind: ReplyKind
    text: str
    heard_at: float | None = None
    emotion: str | None = None  # the user's emotion (None: the controller's default)
    prefs: Preferences | None = None  # the unlocked user's preferences (None: defaults)
    greeting: str | None = None  # said before the job's own text (first job after an unlock)


@dataclass
class Reply:
    """What was said: the text as heard (trimmed on barge-in), the controller's result, the clock."""

    kind: ReplyKind
    text: str
    result: TurnResult | None
    first_audio_s: float | None  # end of user speech -> first audio of this job's own text
    greeting: str | None = None  # the greeting heard before ``text``
    spoken: list[str] = field(default_factory=list)
    failure: MMChatError | None = None  # the controller error that was spoken as a fixed line
    interrupted: bool = False
    tts_error: str | None = None  # speech synthesis failed (the text stands; the audio may be missing)


class ReplyPath:
    """Runs reply jobs: the controller streams sentences into a SpeechWorker that plays into a sink."""

    def __init__(self, controller: Responder, tts: TTS | None) -> None:
        self.controller, self.tts = controller, tts
        self.voices: dict[str, TTS] = {}  # per-user voices loaded so far (failures map to self.tts)

    def voice(self, prefs: Preferences | None) -> TTS | None:
        """The user's Piper voice if set, other than the configured one and installed; else the default."""
        name = prefs.voice if prefs else None
        if self.tts is None or not name or name == getattr(self.tts, "name", None):
            return self.tts
        if name not in self.voices:
            try:
                self.voices[name] = self.tts.with_voice(name)  # type: ignore[attr-defined]
            except (MMChatError, AttributeError) as e:
                log.warning("voice %r unavailable (%s); using the configured voice", name, e)
                self.voices[name] = self.tts
        return self.voices[name]

    def _limit(self, job: ReplyJob) -> dict[str, int]:
        """``max_sentences`` for ``respond`` from the user's reply length (empty: the style's cap)."""
        extra = job.prefs.extra_sentences if job.prefs else 0
        return {"max_sentences": self.controller.style_cap(job.emotion) + extra} if extra else {}

    def run(self, job: ReplyJob, sink: AudioSink | None, cancel: threading.Event | None = None,
            upstream: MMChatError | None = None) -> Reply:
        """Say ``job`` into ``sink`` (None: text only, no TTS); returns once everything has played.

        ``upstream``: the turn already failed before the controller (e.g. ASR heard no words): its
        fixed line is spoken the way a controller failure is.
        """
        heard_at = time.perf_counter() if job.heard_at is None else job.heard_at
        cancel = cancel or threading.Event()
        tts = self.voice(job.prefs)
        worker = SpeechWorker(tts, sink, cancel) if tts is not None and sink is not None else None
        spoken_lines: list[str] = []
        say = worker.say if worker is not None else spoken_lines.append
        if job.greeting:
            say(job.greeting)
        result, failure = None, None
        if job.kind is ReplyKind.REPLY:
            try:
                if upstream is not None:
                    raise upstream
                result = self.controller.respond(job.text, job.emotion, on_sentence=say, cancel=cancel,
                                                 **self._limit(job))
            except MMChatError as e:
                failure = e
                result = TurnResult(text=job.text, emotion=job.emotion or "neutral", error=str(e))
                result.reply = SPOKEN_ERRORS.get(e.code, FALLBACK_FAILED)
                say(result.reply)
        else:
            say(job.text)
        if worker is None:  # text only: what was "said" is what the controller handed out
            lines = spoken_lines[1:] if job.greeting else spoken_lines
            text = job.text if result is None else result.reply
            return Reply(job.kind, text, result, None, job.greeting, lines, failure)
        spoken = worker.finish()
        tts_error = None if worker.error is None else f"speech synthesis failed: {worker.error}"
        if tts_error:
            log.warning("%s", tts_error)
        greeted = bool(job.greeting) and spoken[:1] == [job.greeting]
        spoken = spoken[1:] if greeted else spoken
        starts = worker.started[1:] if job.greeting else worker.started  # the job's own first audio
        first = starts[0] - heard_at if starts else None
        text = job.text if result is None else result.reply
        interrupted = cancel.is_set()
        if interrupted:  # barge-in: keep only what was actually heard
            text = " ".join(spoken)
            if result is not None:
                result.reply, result.interrupted = text, True
        return Reply(job.kind, text, result, first, job.greeting if greeted else None, spoken, failure,
                     interrupted, tts_error)
