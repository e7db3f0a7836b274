"""``main.py serve``: the assistant over HTTP (FastAPI) with a small browser page.

Same answers as the CLI, same JSON fields: ``/api/ask``, ``/api/turn``, ``/api/transcribe``,
``/api/say``, ``/api/perceive``. Uploads are the raw request body (a WAV/MP3/WebM recording or
a photo) with its media type, so ``curl -H 'Content-Type: audio/wav' --data-binary @q.wav`` works
and the page can post a browser recording as is.

Models load on first use; one lock serialises them (the in-process llama.cpp contexts, Whisper and
Piper are not shared between threads); a request that waits too long for it gets 503. Binds to
127.0.0.1 by default, and then answers only requests addressed to this machine's names (no DNS
rebinding). POSTs must carry a JSON, audio, image or octet-stream type, which other web sites
cannot send without the browser asking first (CORS). Text turns skip the voice and face gate, so
exposing the server on a network (``--host``) is the user's explicit choice.
"""
from __future__ import annotations

import collections
import contextlib
import secrets
import tempfile
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, get_args

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from agent.app.server_openapi import document_bodies
from agent.common.config import Emotion, Settings
from tools import ToolContext
from tools.common.errors import ErrorCode, MMChatError

WEB = Path(__file__).resolve().parent / "web"
MAX_UPLOAD = 50 * 1024 * 1024
MAX_AUDIO_S = 120.0  # longer recordings are refused (a turn is one utterance)
MAX_PIXELS = 40_000_000  # bigger photos are refused before decoding
KEEP_REPLIES = 50  # reply WAVs kept under runs/serve (older ones are deleted)
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
UPLOAD_TYPES = ("audio/", "video/", "image/", "application/octet-stream", "application/json")
STATUS = {ErrorCode.DEVICE: 503, ErrorCode.BACKEND_UNAVAILABLE: 503, ErrorCode.LLM_FAILED: 502,
          ErrorCode.MODEL_MISSING: 500, ErrorCode.UNAUTHORIZED: 401, ErrorCode.LOCKED: 403}
GATED = ("/api/ask", "/api/ask_image", "/api/turn")  # turns: on a network, only from an unlocked live session


class Service:
    """One assistant (and one camera-frame analyser) behind a lock."""

    def __init__(self, settings: Settings, assistant: Any = None) -> None:
        self.settings = settings
        self._assistant = assistant  # agent.session.assistant.Assistant; made on first use when None
        self.ctx = assistant.tool_context if assistant is not None else ToolContext()
        self.lock = threading.Lock()
        self.runs = settings.path(settings.paths.runs) / "serve"
        self.audio: collections.OrderedDict[str, Path] = collections.OrderedDict()  # reply key -> WAV

    @property
    def assistant(self) -> Any:
        if self._assistant is None:
            from agent.session.assistant import Assistant

            self._assistant = Assistant(self.settings, tool_context=self.ctx)
        return self._assistant

    @cached_property
    def processor(self) -> Any:
        from agent.session.perception import build_frame_processor

        return build_frame_processor(self.settings, video=False)

    def loaded(self) -> dict[str, bool]:
        return {"assistant": self._assistant is not None, "vision": "processor" in self.__dict__}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.lock.acquire(timeout=self.settings.serve.lock_wait_s):
            raise MMChatError("busy: other requests are still running; try again", ErrorCode.BACKEND_UNAVAILABLE)
        try:
            yield
        finally:
            self.lock.release()

    # -- inputs ---------------------------------------------------------------------------
    def _image(self, data: bytes) -> Any:
        """An uploaded photo, its size checked from the header before it is decoded."""
        import io

        from PIL import Image, UnidentifiedImageError

        from tools.vision.images import load_image

        try:
            w, h = Image.open(io.BytesIO(data)).size
        except (UnidentifiedImageError, OSError, ValueError):
            w = h = 0  # not for Pillow to judge: OpenCV's loader decides below
        if w * h > MAX_PIXELS:
            raise MMChatError(f"image of {w}x{h} pixels is over {MAX_PIXELS // 10**6} megapixels",
                              ErrorCode.INPUT_TOO_LONG)
        return self._with_file(data, ".img", load_image)

    def _with_file(self, data: bytes, suffix: str, fn: Any) -> Any:
        """Uploaded bytes through the same loaders (and checks) as files given on the command line."""
        if not data:
            raise MMChatError("empty upload", ErrorCode.BAD_INPUT)
        with tempfile.NamedTemporaryFile(suffix=suffix) as f:
            f.write(data)
            f.flush()
            try:
                return fn(f.name)
            except MMChatError as e:  # name the upload, not our temporary file
                raise MMChatError(str(e).replace(f.name, "upload"), e.code) from None

    def _audio(self, data: bytes) -> Any:
        from agent.common.audio_io import load_audio
        from tools.common.pcm import SAMPLE_RATE

        pcm = self._with_file(data, ".audio", load_audio)
        if len(pcm) > MAX_AUDIO_S * SAMPLE_RATE:
            raise MMChatError(f"recording over {MAX_AUDIO_S:.0f} s", ErrorCode.INPUT_TOO_LONG)
        return pcm

    @contextlib.contextmanager
    def _seeing(self, image: bytes | None) -> Iterator[str | None]:
        """An uploaded photo is what the camera sees during this request; yields the main face's emotion."""
        from tools.vision.state import PerceptionService

        restore = self.ctx.saved("perception")
        try:
            if image is not None:
                self.processor.process_image(self._image(image))
                self.ctx.perception = PerceptionService(self.processor.state)
            yield self.ctx.perception.user_emotion() if image is not None and self.ctx.perception else None
        finally:
            restore()

    # -- the endpoints' work ---------------------------------------------------------------------
    def ask(self, text: str, emotion: str | None, image: bytes | None) -> dict[str, Any]:
        with self._locked(), self._seeing(image) as seen:
            reply = self.assistant.answer(text, emotion or seen)
            assert reply.result is not None
            return reply.result.as_json()

    def transcribe(self, audio: bytes) -> dict[str, Any]:
        with self._locked():
            text, meta = self.assistant.transcribe(self._audio(audio))
            return {"text": text, **meta}

    def say(self, text: str) -> Path:
        from agent.speak.speech_out import BufferSink

        with self._locked():
            sink = BufferSink()
            self.assistant.speak(text, sink)
            return self._keep(sink)

    def turn(self, audio: bytes, emotion: str | None) -> dict[str, Any]:
        with self._locked():
            pcm = self._audio(audio)
            transcript, result, sink = self.assistant.spoken_turn(pcm, emotion=emotion)
            path = self._keep(sink)
            return {"transcript": transcript, **result.as_json(), "reply_audio": f"/api/audio/{path.stem}"}

    def perceive(self, image: bytes) -> dict[str, Any]:
        with self._locked():
            frame = self._image(image)
            t0 = time.perf_counter()
            snap = self.processor.process_image(frame)
            return {"frames": [snap.frame_json(0.0)], "summary": snap.summary(),
                    "timings": {"total_s": round(time.perf_counter() - t0, 3)}}

    def _keep(self, sink: Any) -> Path:
        """Save a reply under an unguessable key; only the last KEEP_REPLIES stay on disk."""
        self.runs.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(12)
        self.audio[key] = sink.save(self.runs / f"{key}.wav")
        while len(self.audio) > KEEP_REPLIES:
            _, old = self.audio.popitem(last=False)
            old.unlink(missing_ok=True)
        return self.audio[key]


async def _json(request: Request) -> dict[str, Any]:
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise MMChatError("the body must be a JSON object", ErrorCode.BAD_INPUT)
    return payload


def _text(payload: dict[str, Any], limit: int) -> str:
    text = str(payload.get("text") or "").strip()
    if not text:
        raise MMChatError("a non-empty 'text' is needed", ErrorCode.BAD_INPUT)
    if len(text) > limit:
        raise MMChatError(f"text over {limit} characters", ErrorCode.INPUT_TOO_LONG)
    return text


def _emotion(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in get_args(Emotion):
        raise MMChatError(f"emotion must be one of {', '.join(get_args(Emotion))}", ErrorCode.BAD_INPUT)
    return str(value)


def create_app(settings: Settings, assistant: Any = None, hosts: list[str] | None = None,
               token: str | None = None, preload: bool = False) -> FastAPI:
    """``hosts``: Host names served (default: this machine's; ``["*"]`` when bound to a network).

    ``token``: every request must carry this pairing token (agent/app/secure.py), and turns are
    answered only for a live session unlocked by voice and face (``?client=``); ``preload``: load
    the live sessions' models now rather than at the first connection.
    """
    from agent.app.rtc.hub import RtcHub, add_rtc_routes
    from agent.app.rtc.shared import SharedModels

    svc = Service(settings, assistant)
    hub = RtcHub(settings, SharedModels(settings, svc.assistant, svc.lock))
    limit = settings.controller.max_user_chars
    app = FastAPI(title="MMChat", description="Local, offline multimodal voice assistant")
    app.state.service, app.state.rtc = svc, hub
    document_bodies(app)  # agent/app/server_openapi.py: the raw-body endpoints' request bodies
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts or LOCAL_HOSTS)

    @app.middleware("http")
    async def typed_posts(request: Request, call_next: Any) -> Any:
        kind = request.headers.get("content-type", "")
        if request.method == "POST" and not kind.startswith(UPLOAD_TYPES):
            return JSONResponse({"error": "send JSON, audio, an image or application/octet-stream",
                                 "code": ErrorCode.BAD_INPUT.value}, status_code=415)
        return await call_next(request)

    if token is not None:
        @app.middleware("http")
        async def gated_turns(request: Request, call_next: Any) -> Any:
            if request.url.path in GATED and not hub.active(request.query_params.get("client")):
                return JSONResponse({"error": "locked: from another machine, a turn needs its live session "
                                              "(?client=) unlocked by voice and face first",
                                     "code": ErrorCode.LOCKED.value}, status_code=403)
            return await call_next(request)

        from agent.app.secure import require_token

        require_token(app, token)  # outermost: nothing is answered without the token
    if preload:
        threading.Thread(target=hub.shared.load, name="rtc-preload", daemon=True).start()

    @app.exception_handler(MMChatError)
    async def _typed(_: Request, e: MMChatError) -> JSONResponse:
        return JSONResponse({"error": str(e), "code": e.code.value}, status_code=STATUS.get(e.code, 400))

    async def body(request: Request) -> bytes:
        """The upload, refused as soon as it is known to be too big (never buffered past the limit)."""
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD:
            raise HTTPException(413, f"upload over {MAX_UPLOAD // 2**20} MB")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD:
                raise HTTPException(413, f"upload over {MAX_UPLOAD // 2**20} MB")
        if not data:
            raise MMChatError("empty upload", ErrorCode.BAD_INPUT)
        return bytes(data)

    from agent.app.server_affect import add_affect_routes

    add_affect_routes(app, svc, body, _json)
    add_rtc_routes(app, hub, _json)

    @app.get("/live", response_class=HTMLResponse)
    async def live_page() -> str:
        return (WEB / "live.html").read_text(encoding="utf-8")

    @app.get("/web/live.js")
    async def live_js() -> FileResponse:
        return FileResponse(WEB / "live.js", media_type="text/javascript")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (WEB / "index.html").read_text(encoding="utf-8")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "loaded": svc.loaded(), "llm": f"{settings.llm.backend}:{settings.llm.model}"}

    @app.post("/api/ask")
    async def ask(request: Request) -> dict[str, Any]:
        payload = await _json(request)
        text, emotion = _text(payload, limit), _emotion(payload.get("emotion"))
        return await run_in_threadpool(svc.ask, text, emotion, None)

    @app.post("/api/ask_image")
    async def ask_image(request: Request, text: str, emotion: str | None = None) -> dict[str, Any]:
        text, emotion = _text({"text": text}, limit), _emotion(emotion)
        return await run_in_threadpool(svc.ask, text, emotion, await body(request))

    @app.post("/api/transcribe")
    async def transcribe(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(svc.transcribe, await body(request))

    @app.post("/api/turn")
    async def turn(request: Request, emotion: str | None = None) -> dict[str, Any]:
        emotion = _emotion(emotion)
        return await run_in_threadpool(svc.turn, await body(request), emotion)

    @app.post("/api/perceive")
    async def perceive(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(svc.perceive, await body(request))

    @app.post("/api/say")
    async def say(request: Request) -> FileResponse:
        text = _text(await _json(request), limit)
        return FileResponse(await run_in_threadpool(svc.say, text), media_type="audio/wav")

    @app.get("/api/audio/{key}")
    async def audio(key: str) -> FileResponse:
        path = svc.audio.get(key)
        if path is None or not path.is_file():
            raise HTTPException(404, "no such reply audio")
        return FileResponse(path, media_type="audio/wav")

    return app


def serve(settings: Settings, host: str, port: int, token: str | None = None, tls: tuple[Path, Path] | None = None) -> None:
    """``token``/``tls``: set when bound to a network (agent/app/cli/serve.py makes them)."""
    import uvicorn

    local = host in LOCAL_HOSTS
    app = create_app(settings, hosts=None if local else ["*"], token=token, preload=True)
    ssl = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    uvicorn.run(app, host=host, port=port, log_level="warning", **ssl)
