"""Per-user preferences stored in profile.json: how to address the user, reply length, TTS voice.

``reply_length`` adds sentences to the emotion style's cap (short = the cap as is).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agent.common import phrases
from agent.common.models import PIPER_VOICES
from tools.common.errors import MMChatError

REPLY_EXTRA = {"short": 0, "normal": 1, "long": 2}  # sentences added to the style's max_sentences


@dataclass(frozen=True)
class Preferences:
    address_as: str
    voice: str | None = None  # Piper voice name (None: the configured tts.voice)
    reply_length: str = "short"

    @classmethod
    def of(cls, user: str, prefs: dict[str, Any] | None) -> Preferences:
        """Lenient read of a stored preferences dict (unknown or missing values fall back to defaults)."""
        prefs = prefs or {}
        length = prefs.get("reply_length")
        return cls(address_as=str(prefs.get("address_as") or user).strip() or user,
                   voice=prefs.get("voice") or None,
                   reply_length=length if length in REPLY_EXTRA else "short")

    @property
    def extra_sentences(self) -> int:
        return REPLY_EXTRA[self.reply_length]

    def greeting(self) -> str:
        """The one sentence spoken on unlock."""
        return phrases.greeting(self.address_as)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_voice(voice: str) -> str:
    """A known Piper voice name, else a one-line error listing the known ones."""
    if voice not in PIPER_VOICES:
        raise MMChatError(f"unknown voice {voice!r} (known: {', '.join(sorted(PIPER_VOICES))})")
    return voice
