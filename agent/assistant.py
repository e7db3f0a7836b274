"""Builds the stages from Settings and runs text, speech and spoken turns."""
from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

import numpy as np

from agent.asr import ASR, WhisperASR
from agent.audio_io import load_audio
from agent.config import Settings
from agent.controller import FALLBACK_FAILED, Controller, TurnResult
from agent.errors import ErrorCode, MMChatError
from agent.llm import make_chat_model
from agent.prompts import PromptBook
from agent.speech_out import AudioSink, BufferSink, SpeechWorker
from agent.timing import Stopwatch
from agent.tts import TTS, PiperTTS
from tools import ToolContext, build_tools

SPOKEN_ERRORS = {
    ErrorCode.NO_SPEECH: "Sorry, I didn't hear any words there.",
    ErrorCode.INPUT_TOO_LONG: "That was too long for me to take in at once. Could you say it more briefly?",
}


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
        reply_llm = make_chat_model(reply_settings, self.settings.models_dir, role="reply")
        router = None
        if self.settings.controller.router:
            from agent.router import MiniLMRouter

            router = MiniLMRouter()
        ctl = Controller(llm, build_tools(self.tool_context), PromptBook(), self.settings.controller, router,
                         reply_llm, route_answers=not s.reply_model)
        if self.settings.controller.warm_up:
            ctl.warm_up()
        return ctl

    # -- turns ----------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray | str | Path) -> tuple[str, dict]:
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        sw = Stopwatch()
        with sw.stage("asr_s"):
            t = self.asr.transcribe(audio)
        return t.text, {"duration_s": t.duration_s, "language": t.language, "timings": sw.timings}

    def speak(self, text: str, sink: AudioSink) -> float:
        """Synthesize ``text`` into ``sink``; returns seconds to the first audio chunk."""
        t0 = time.perf_counter()
        worker = SpeechWorker(self.tts, sink)
        worker.say(text)
        worker.finish()
        if worker.error:
            raise MMChatError(f"speech synthesis failed: {worker.error}")
        return (worker.first_audio_at or time.perf_counter()) - t0

    def spoken_turn(self, audio: np.ndarray, sink: AudioSink | None = None, emotion: str | None = None,
                    cancel=None) -> tuple[str, TurnResult, AudioSink]:
        """ASR -> controller -> streamed TTS. Time zero is the end of the user's speech."""
        sink = sink or BufferSink()
        t0 = time.perf_counter()
        sw = Stopwatch()
        worker = SpeechWorker(self.tts, sink, cancel)
        transcript = ""
        try:
            with sw.stage("asr_s"):
                transcript = self.asr.transcribe(audio).text
            result = self.controller.respond(transcript, emotion, on_sentence=worker.say, cancel=worker.cancel)
        except MMChatError as e:
            result = TurnResult(text=transcript, emotion=emotion or "neutral", error=str(e))
            result.reply = SPOKEN_ERRORS.get(e.code, FALLBACK_FAILED)
            worker.say(result.reply)
        spoken = worker.finish()
        if worker.cancel.is_set():  # barge-in: keep only what was actually said
            result.reply = " ".join(spoken)
        timings = {**sw.timings, **{f"controller_{k}" if not k.startswith(("llm", "reply", "tool")) else k: v
                                    for k, v in result.timings.items()}}
        asr_s = sw.timings.get("asr_s", 0.0)
        for k in ("llm_first_token_s", "llm_first_sentence_s", "reply_first_sentence_s"):
            if k in timings:
                timings[k] = round(timings[k] + asr_s, 4)  # relative to end of speech
        if worker.first_audio_at is not None:
            timings["tts_first_audio_s"] = round(worker.first_audio_at - t0, 4)
            timings["voice_to_voice_s"] = timings["tts_first_audio_s"]
        timings["total_s"] = round(time.perf_counter() - t0, 4)
        result.timings = timings
        return transcript, result, sink
