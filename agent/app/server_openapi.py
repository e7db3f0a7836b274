"""Request bodies of the raw-body endpoints in the server's OpenAPI schema.

The handlers read ``Request`` directly (uploads are streamed and capped), so FastAPI cannot infer
their bodies; this documents them (``/docs``, clients, and schemathesis fuzzing from the schema).
"""
from __future__ import annotations

from typing import Any, get_args

from fastapi import FastAPI

from agent.common.config import Emotion

_BINARY = {"type": "string", "format": "binary"}
_TEXT = {"type": "object", "required": ["text"],
         "properties": {"text": {"type": "string"}, "emotion": {"type": "string", "enum": list(get_args(Emotion))}}}


def _body(schema: dict[str, Any], *types: str) -> dict[str, Any]:
    return {"required": True, "content": {t: {"schema": schema} for t in types}}


AUDIO = _body(_BINARY, "audio/wav", "application/octet-stream")
IMAGE = _body(_BINARY, "image/jpeg", "image/png", "application/octet-stream")
TEXT = _body(_TEXT, "application/json")
FUSED = _body({"type": "object", "properties": {"text": {"type": "string"}, "audio": {"type": "string", "format": "byte"},
                                                "image": {"type": "string", "format": "byte"}}}, "application/json")
BODIES = {"/api/ask": TEXT, "/api/say": TEXT, "/api/emotion/text": TEXT, "/api/ask_image": IMAGE,
          "/api/perceive": IMAGE, "/api/emotion/face": IMAGE, "/api/transcribe": AUDIO, "/api/turn": AUDIO,
          "/api/emotion/audio": AUDIO, "/api/emotion/fused": FUSED}


def document_bodies(app: FastAPI) -> None:
    """Add ``BODIES`` to the POST operations that declare none (the schema is built once, on first use)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path, body in BODIES.items():
                op = schema.get("paths", {}).get(path, {}).get("post")
                if op is not None:
                    op.setdefault("requestBody", body)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
