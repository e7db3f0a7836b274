"""HTTP: one emotion recogniser per modality and their fusion (``/api/emotion/*``), the same JSON as perceive.

``text``: JSON ``{"text"}``; ``audio``: a recording as the body; ``face``: a photo as the body;
``fused``: JSON ``{"text"?, "audio"?, "image"?}`` with the recording and photo base64-encoded.
Every answer carries ``fused`` (emotion, emotion_scores, gender, age, which modalities agreed).
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from tools.common.errors import ErrorCode, MMChatError


def _b64(payload: dict[str, Any], key: str) -> bytes | None:
    value = payload.get(key)
    if value in (None, ""):
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise MMChatError(f"'{key}' must be base64", ErrorCode.BAD_INPUT) from None


class AffectEndpoints:
    """Runs the recognisers on uploads through the server's own loaders (size and type checks)."""

    def __init__(self, svc: Any) -> None:
        from tools.affect.service import Affect

        self.svc = svc
        self.affect = Affect.shared(svc.settings.affect, svc.settings.identity.min_speech_s)

    def run(self, text: str | None = None, audio: bytes | None = None, image: bytes | None = None) -> dict[str, Any]:
        if text is None and audio is None and image is None:
            raise MMChatError("give at least one of text, audio, image", ErrorCode.BAD_INPUT)
        pcm = self.svc._audio(audio) if audio is not None else None
        with self.svc._locked():
            frames = None
            out: dict[str, Any] = {}
            if image is not None:
                snap = self.svc.processor.process_image(self.svc._image(image))
                frames = [snap.frame_json(0.0)]
                out["frames"] = frames
            out.update(self.affect.perceive(frames, pcm, text))
            return out


def add_affect_routes(app: FastAPI, svc: Any, body: Callable[[Request], Awaitable[bytes]],
                      json_body: Callable[[Request], Awaitable[dict[str, Any]]]) -> None:
    ep = AffectEndpoints(svc)

    @app.post("/api/emotion/text")
    async def emotion_text(request: Request) -> dict[str, Any]:
        payload = await json_body(request)
        return await run_in_threadpool(ep.run, str(payload.get("text") or ""))

    @app.post("/api/emotion/audio")
    async def emotion_audio(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(ep.run, None, await body(request))

    @app.post("/api/emotion/face")
    async def emotion_face(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(ep.run, None, None, await body(request))

    @app.post("/api/emotion/fused")
    async def emotion_fused(request: Request) -> dict[str, Any]:
        p = await json_body(request)
        text = None if p.get("text") is None else str(p["text"])
        return await run_in_threadpool(ep.run, text, _b64(p, "audio"), _b64(p, "image"))
