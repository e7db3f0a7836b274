"""``main.py serve``: the assistant over HTTP (FastAPI) with a small browser page.

Same answers as the CLI, same JSON fields: ``/api/ask``, ``/api/turn``, ``/api/transcribe``,
``/api/say``, ``/api/perceive``. Uploads are the raw request body (a WAV/MP3/WebM recording or
a photo), so ``curl --data-binary @q.wav`` works and the page can post a browser recording as is.
Models load on first use; one lock serialises them (the in-process llama.cpp contexts, Whisper and
Piper are not shared between threads). Binds to 127.0.0.1 by default: text turns skip the voice
and face gate, so exposing it on a network is the user's explicit choice (``--host``).
"""
from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from agent.config import Settings
from agent.errors import ErrorCode, MMChatError
from tools import ToolContext

WEB = Path(__file__).resolve().parent / "web"
MAX_UPLOAD = 50 * 1024 * 1024
STATUS = {ErrorCode.DEVICE: 503, ErrorCode.BACKEND_UNAVAILABLE: 503, ErrorCode.LLM_FAILED: 502,
          ErrorCode.MODEL_MISSING: 500}


class Service:
    """One assistant (and one camera-frame analyser) behind a lock."""

    def __init__(self, settings: Settings, assistant: Any = None) -> None:
        self.settings = settings
        self._assistant = assistant  # agent.assistant.Assistant; made on first use when None
        self.ctx = assistant.tool_context if assistant is not None else ToolContext()
        self.lock = threading.Lock()
        self.runs = settings.path(settings.paths.runs) / "serve"
        self.audio: dict[str, Path] = {}  # reply id -> WAV

    @property
    def assistant(self) -> Any:
        if self._assistant is None:
            from agent.assistant import Assistant

            self._assistant = Assistant(self.settings, tool_context=self.ctx)
        return self._assistant

    @cached_property
    def processor(self) -> Any:
        from tools.vision.camera import FrameProcessor

        return FrameProcessor.from_settings(self.settings, video=False)

    def loaded(self) -> dict[str, bool]:
        return {"assistant": self._assistant is not None, "vision": "processor" in self.__dict__}

    # -- inputs ---------------------------------------------------------------------------
    def _with_file(self, data: bytes, suffix: str, fn: Any) -> Any:
        """Uploaded bytes through the same loaders (and checks) as files given on the command line."""
        if not data:
            raise MMChatError("empty upload", ErrorCode.BAD_INPUT)
        with tempfile.NamedTemporaryFile(suffix=suffix) as f:
            f.write(data)
            f.flush()
            return fn(f.name)

    @contextlib.contextmanager
    def _seeing(self, image: bytes | None) -> Iterator[str | None]:
        """An uploaded photo is what the camera sees during this request; yields the main face's emotion."""
        from tools.vision.images import load_image
        from tools.vision.state import PerceptionService

        previous = self.ctx.perception
        try:
            if image:
                self.processor.process_image(self._with_file(image, ".img", load_image))
                self.ctx.perception = PerceptionService(self.processor.state)
            yield self.ctx.perception.user_emotion() if image and self.ctx.perception else None
        finally:
            self.ctx.perception = previous

    # -- the endpoints' work ---------------------------------------------------------------------
    def ask(self, text: str, emotion: str | None, image: bytes | None) -> dict[str, Any]:
        with self.lock, self._seeing(image) as seen:
            return self.assistant.controller.respond(text, emotion or seen).as_json()

    def transcribe(self, audio: bytes) -> dict[str, Any]:
        with self.lock:
            text, meta = self._with_file(audio, ".audio", self.assistant.transcribe)
            return {"text": text, **meta}

    def say(self, text: str) -> Path:
        from agent.speech_out import BufferSink

        with self.lock:
            sink = BufferSink()
            self.assistant.speak(text, sink)
            return self._keep(sink)

    def turn(self, audio: bytes, emotion: str | None, image: bytes | None) -> dict[str, Any]:
        from agent.audio_io import load_audio

        with self.lock, self._seeing(image) as seen:
            pcm = self._with_file(audio, ".audio", load_audio)
            transcript, result, sink = self.assistant.spoken_turn(pcm, emotion=emotion or seen)
            path = self._keep(sink)
            return {"transcript": transcript, **result.as_json(), "reply_audio": f"/api/audio/{path.stem}"}

    def perceive(self, image: bytes) -> dict[str, Any]:
        from tools.vision.images import load_image

        with self.lock:
            frame = self._with_file(image, ".img", load_image)
            t0 = time.perf_counter()
            snap = self.processor.process_image(frame)
            return {"frames": [snap.frame_json(0.0)], "summary": snap.summary(),
                    "timings": {"total_s": round(time.perf_counter() - t0, 3)}}

    def _keep(self, sink: Any) -> Path:
        self.runs.mkdir(parents=True, exist_ok=True)
        key = f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.audio):04d}"
        path = sink.save(self.runs / f"{key}.wav")
        self.audio[key] = path
        return path


def create_app(settings: Settings, assistant: Any = None) -> FastAPI:
    svc = Service(settings, assistant)
    app = FastAPI(title="MMChat", description="Local, offline multimodal voice assistant")
    app.state.service = svc

    @app.exception_handler(MMChatError)
    async def _typed(_: Request, e: MMChatError) -> JSONResponse:
        return JSONResponse({"error": str(e), "code": e.code.value}, status_code=STATUS.get(e.code, 400))

    async def body(request: Request) -> bytes:
        data = await request.body()
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"upload over {MAX_UPLOAD // 2**20} MB")
        return data

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (WEB / "index.html").read_text(encoding="utf-8")

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "loaded": svc.loaded(), "llm": f"{settings.llm.backend}:{settings.llm.model}"}

    @app.post("/api/ask")
    def ask(payload: dict[str, Any]) -> dict[str, Any]:
        text = str(payload.get("text") or "").strip()
        if not text:
            raise MMChatError("ask needs a non-empty 'text'", ErrorCode.BAD_INPUT)
        return svc.ask(text, payload.get("emotion"), None)

    @app.post("/api/ask_image")
    async def ask_image(request: Request, text: str, emotion: str | None = None) -> dict[str, Any]:
        data = await body(request)
        return await _threaded(svc.ask, text, emotion, data)

    @app.post("/api/transcribe")
    async def transcribe(request: Request) -> dict[str, Any]:
        return await _threaded(svc.transcribe, await body(request))

    @app.post("/api/turn")
    async def turn(request: Request, emotion: str | None = None) -> dict[str, Any]:
        return await _threaded(svc.turn, await body(request), emotion, None)

    @app.post("/api/perceive")
    async def perceive(request: Request) -> dict[str, Any]:
        return await _threaded(svc.perceive, await body(request))

    @app.post("/api/say")
    def say(payload: dict[str, Any]) -> FileResponse:
        text = str(payload.get("text") or "").strip()
        if not text:
            raise MMChatError("say needs a non-empty 'text'", ErrorCode.BAD_INPUT)
        return FileResponse(svc.say(text), media_type="audio/wav")

    @app.get("/api/audio/{key}")
    def audio(key: str) -> FileResponse:
        path = svc.audio.get(key)
        if path is None or not path.is_file():
            raise HTTPException(404, "no such reply audio")
        return FileResponse(path, media_type="audio/wav")

    return app


async def _threaded(fn: Any, *args: Any) -> Any:
    """Model work off the event loop (the page stays responsive; the service lock orders requests)."""
    return await run_in_threadpool(fn, *args)


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
