"""Typed errors with stable codes; the CLI turns them into one-line messages."""
from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable error codes (shown to users and asserted in tests)."""

    CONFIG = "config-invalid"
    AUDIO_MISSING = "audio-missing"
    AUDIO_INVALID = "audio-invalid"
    AUDIO_EMPTY = "audio-empty"
    NO_SPEECH = "no-speech"
    IMAGE_INVALID = "image-invalid"
    MODEL_MISSING = "model-missing"
    BACKEND_UNAVAILABLE = "backend-unavailable"
    LLM_FAILED = "llm-failed"
    INPUT_TOO_LONG = "input-too-long"
    PROFILE = "profile-error"
    DEVICE = "device-unavailable"
    STORAGE = "storage-failed"  # a run output could not be written (disk full, read-only, gone)
    BAD_INPUT = "bad-input"
    UNAUTHORIZED = "unauthorized"  # serve on a network: no or a wrong pairing token
    LOCKED = "locked"  # a remote turn while its live session is not unlocked by voice and face
    TOOL_CALL = "tool-call-invalid"
    SEQUENCE = "sequence-invalid"


class MMChatError(Exception):
    """Base error: a code and a one-line, user-facing message."""

    code: ErrorCode = ErrorCode.BAD_INPUT

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split())


class ConfigError(MMChatError):
    code = ErrorCode.CONFIG


class AudioError(MMChatError):
    code = ErrorCode.AUDIO_INVALID


class ModelMissingError(MMChatError):
    code = ErrorCode.MODEL_MISSING


class BackendUnavailableError(MMChatError):
    code = ErrorCode.BACKEND_UNAVAILABLE


class LLMError(MMChatError):
    code = ErrorCode.LLM_FAILED
