"""Builds the stages from Settings and runs text, speech and spoken turns."""
from __future__ import annotations

import logging
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings
from agent.common.timing import Stopwatch
from agent.listen.asr import ASR, WhisperASR
from agent.speak.reply import Reply, ReplyJob, ReplyKind, ReplyPath
from agent.speak.speech_out import AudioSink, BufferSink
from agent.speak.tts import TTS, PiperTTS
from agent.think.controller import Controller, TurnResult
from agent.think.llm import make_chat_model
from agent.think.prompts import PromptBook
from tools import ToolContext, build_tools
from tools.common.errors import ErrorCode, MMChatError

log = logging.getLogger(__name__)

class Assistant:
    """Lazily builds ASR, controller and TTS (each loads only when first used)."""

    def __init__(self, settings: Settings, tool_context: ToolContext | None = None) -> None:
        self.settings = settings
        self.tool_context = tool_context or ToolContext()

    @cached_property
    def asr(self) -> ASR:
        return WhisperASR(self.settings.asr, self.settings.models_dir)

    @cached_property
    def tts(self) -> TTS:
        return PiperTTS(self.settings.tts, self.settings.models_dir)

    @cached_property
    def controller(self) -> Controller:
        llm = make_chat_model(self.settings.llm, self.settings.models_dir)
        s = self.settings.llm
        reply_settings = s.model_copy(update={"model": s.reply_model}) if s.reply_model else s
        prompts = PromptBook()
        # in-process: an answering context per style family; a server keeps its own caches: one reply model
        styled = ({family: make_chat_model(reply_settings, self.settings.models_dir, role=f"reply:{family}")
                   for family in prompts.styles} if reply_settings.backend == "embedded" else None)
        reply_llm = None if styled else make_chat_model(reply_settings, self.settings.models_dir, role="reply")
        router = None
        if self.settings.controller.router:
            from agent.think.router import load_router

            router = load_router(self.settings.controller, self.settings.models_dir)
        ctl = Controller(llm, build_tools(self.tool_context), prompts, self.settings.controller, router,
                         reply_llm, route_answers=not s.reply_model, styled_llms=styled)
        if self.settings.controller.warm_up:
            done = ctl.warm_up(self.settings.cache_dir / "llm-state")
            log.info("controller prompts: %s", done)
        return ctl

    def preload(self) -> Callable[[], None]:
        """Load ASR, TTS and the controller in parallel threads; call the result to wait for them.

        Cold start is mostly waiting on files and native initialisation, which overlap well on
        two cores; the session builds its other stages (VAD, wake word, gate) meanwhile.
        """
        errors: list[BaseException] = []

        def load(name: str) -> None:
            try:
                getattr(self, name)
            except BaseException as e:  # noqa: BLE001 - re-raised by the waiter
                errors.append(e)

        threads = [threading.Thread(target=load, args=(n,), name=f"load-{n}", daemon=True)
                   for n in ("controller", "asr", "tts")]
        for t in threads:
            t.start()

        def wait() -> None:
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
        return wait

    # -- turns ----------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray | str | Path) -> tuple[str, dict]:
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        sw = Stopwatch()
        with sw.stage("asr_s"):
            t = self.asr.transcribe(audio)
        return t.text, {"duration_s": t.duration_s, "language": t.language, "timings": sw.timings}

    @cached_property
    def replies(self) -> ReplyPath:
        """The one reply path (agent.speak.reply), shared with the session and the server."""
        return ReplyPath(self.controller, self.tts)

    def speak(self, text: str, sink: AudioSink) -> float:
        """Synthesize ``text`` into ``sink``; returns seconds to the first audio chunk."""
        t0 = time.perf_counter()
        reply = ReplyPath(self.controller_if_loaded, self.tts).run(ReplyJob(ReplyKind.NOTICE, text, t0), sink)
        if reply.tts_error:
            raise MMChatError(reply.tts_error)
        return reply.first_audio_s if reply.first_audio_s is not None else time.perf_counter() - t0

    @property
    def controller_if_loaded(self) -> Controller | _NoController:
        """The controller when built; fixed lines need none (a placeholder that is never asked)."""
        return self.__dict__.get("controller") or _NoController()

    def answer(self, text: str, emotion: str | None = None, sink: AudioSink | None = None,
               cancel: threading.Event | None = None) -> Reply:
        """One text turn through the reply path; spoken into ``sink`` when given.

        Typed-input mistakes (empty, too long) raise: a caller's error, not something to say.
        """
        reply = self.replies.run(ReplyJob(ReplyKind.REPLY, text, None, emotion), sink, cancel)
        if reply.failure is not None and reply.failure.code in (ErrorCode.BAD_INPUT, ErrorCode.INPUT_TOO_LONG):
            raise reply.failure
        return reply

    def spoken_turn(self, audio: np.ndarray, sink: AudioSink | None = None, emotion: str | None = None,
                    cancel: threading.Event | None = None) -> tuple[str, TurnResult, AudioSink]:
        """ASR -> the reply path (controller -> streamed TTS). Time zero is the end of the user's speech."""
        sink = sink or BufferSink()
        t0 = time.perf_counter()
        sw = Stopwatch()
        transcript = ""
        error: MMChatError | None = None
        try:
            with sw.stage("asr_s"):
                transcript = self.asr.transcribe(audio).text
        except MMChatError as e:
            transcript, error = "", e
        job = ReplyJob(ReplyKind.REPLY, transcript, t0, emotion)
        reply = self.replies.run(job, sink, cancel, upstream=error)
        result = reply.result
        assert result is not None
        timings = {**sw.timings, **{f"controller_{k}" if not k.startswith(("llm", "reply", "tool")) else k: v
                                    for k, v in result.timings.items()}}
        asr_s = sw.timings.get("asr_s", 0.0)
        for k in ("llm_first_token_s", "llm_first_sentence_s", "reply_first_sentence_s"):
            if k in timings:
                timings[k] = round(timings[k] + asr_s, 4)  # relative to end of speech
        if reply.first_audio_s is not None:
            timings["tts_first_audio_s"] = round(reply.first_audio_s, 4)
            timings["voice_to_voice_s"] = timings["tts_first_audio_s"]
        timings["total_s"] = round(time.perf_counter() - t0, 4)
        result.timings = timings
        return transcript, result, sink


class _NoController:
    """Stands in for the controller on fixed-line jobs, so ``say`` never loads the LLM."""

    def respond(self, *_a: object, **_k: object) -> TurnResult:
        raise MMChatError("no controller loaded for a fixed line")

    def style_cap(self, emotion: str | None = None) -> int:
        return 1
