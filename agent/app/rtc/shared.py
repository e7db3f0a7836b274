"""The models every browser session shares, loaded once per server process.

Whisper, Piper, the LLM contexts (and router), the voiceprint and face encoders, and the object
detector are loaded once. Each client gets thin views on them: its own Controller (own tools bound
to its own ToolContext, own history) over the same LLM, and calls that take a lock where the model
is not safe to enter from two sessions at once (llama.cpp, espeak inside Piper, Whisper's threads).
"""
from __future__ import annotations

import collections
import copy
import threading
from functools import cached_property
from typing import Any, Callable, Iterator

import numpy as np

from agent.common.config import Settings
from agent.session.responses import Hold
from tools import ToolContext, build_tools


class Serialized:
    """``inner`` with the calls named in ``methods`` taken under ``lock``; all else passes through."""

    def __init__(self, inner: Any, lock: threading.Lock, methods: tuple[str, ...]) -> None:
        self._inner, self._lock, self._methods = inner, lock, methods

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._methods:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)
        return call


class SerializedTTS:
    """A TTS whose chunks are made one at a time under ``lock`` (espeak-ng is not reentrant), so a
    session playing its reply never holds the lock while the chunk plays."""

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self._inner, self._lock = inner, lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        with self._lock:
            chunks = iter(self._inner.synthesize(text))
        while True:
            with self._lock:
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def with_voice(self, name: str) -> "SerializedTTS":
        return SerializedTTS(self._inner.with_voice(name), self._lock)


class ClientAssistant:
    """What ``build_parts`` takes as ``assistant``: one client's ASR, controller, TTS and tool context."""

    def __init__(self, asr: Any, controller: Any, tts: Any, tool_context: ToolContext) -> None:
        self.asr, self.controller, self.tts, self.tool_context = asr, controller, tts, tool_context


class SharedModels:
    """Loads the heavy models once (``load``) and hands out per-client views (``for_client``)."""

    def __init__(self, settings: Settings, assistant: Any = None, llm_lock: threading.Lock | None = None) -> None:
        """``assistant``/``llm_lock``: the HTTP service's, so its text turns and the live sessions never
        enter the LLM at once (its ASR and TTS are wrapped in place on ``load``)."""
        from agent.session.assistant import Assistant

        self.settings = settings
        self.assistant = assistant or Assistant(settings)
        self.llm_lock = llm_lock or threading.Lock()
        self.asr_lock, self.tts_lock, self.id_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._loaded = threading.Event()
        self._load_lock = threading.Lock()
        self._namer_lock = threading.Lock()
        self.hold = Hold()  # any client's gate check or reply: every client's camera stage slows down

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    @cached_property
    def checker(self) -> Any:
        from agent.identity.verify import IdentityChecker

        return IdentityChecker(self.settings)

    @cached_property
    def detector(self) -> Any:
        from tools.vision.detector import load_detector

        return load_detector(self.settings)

    def load(self) -> None:
        """Everything, once (later callers wait for the first)."""
        with self._load_lock:
            if self._loaded.is_set():
                return
            wait = self.assistant.preload()
            _ = self.checker.voiceprint, self.checker.faces, self.detector
            from tools.affect.service import Affect

            _ = Affect.shared(self.settings.affect, self.settings.identity.min_speech_s).text_model
            wait()
            a = self.assistant.__dict__  # the cached models, now taken under their locks by every user
            a["asr"] = Serialized(a["asr"], self.asr_lock, ("transcribe",))
            a["tts"] = SerializedTTS(a["tts"], self.tts_lock)
            self._loaded.set()

    def for_client(self, ctx: ToolContext) -> ClientAssistant:
        """A client's view: its own Controller (tools on ``ctx``, empty history) over the shared LLM."""
        shared = self.assistant.controller
        ctl = copy.copy(shared)  # llm, reply_llm, router, prompts, settings, policy: shared
        tools = build_tools(ctx)
        ctl.tools, ctl.schemas = {t.name: t for t in tools}, {t.name: t.args_schema for t in tools}
        ctl.history = collections.deque(maxlen=shared.history.maxlen)
        return ClientAssistant(self.assistant.asr, Serialized(ctl, self.llm_lock, ("respond",)),
                               self.assistant.tts, ctx)

    def gate(self, gate: Any) -> Any:
        """A client's IdentityGate with its model calls serialised."""
        return Serialized(gate, self.id_lock, ("check", "face_present", "same_voice"))

    def processor_factory(self, on_processor: Callable[[Any], object]) -> Callable[..., Any]:
        """``PerceptionHook.make_processor`` for a client: its own face/hand analyser (MediaPipe keeps
        per-stream state) over the shared detector; ``on_processor`` sees it before the first frame."""
        from agent.identity.face_classifier import face_namer
        from tools.vision.camera import FrameProcessor
        from tools.vision.face_hands import FaceHandsAnalyser

        def make(settings: Settings, video: bool) -> FrameProcessor:
            processor = FrameProcessor(self.detector, settings.detector, FaceHandsAnalyser(settings, video=video))
            with self._namer_lock:  # the profiles' classifier cache is written by one session at a time
                processor.namer = face_namer(settings, video)
            on_processor(processor)
            return processor
        return make
