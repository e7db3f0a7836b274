"""Spoken words as a key: normalisation, the word-error rule, and the salted per-word hash record.

Rule (the same for a passphrase and a challenge answer):

1. Normalise both texts with Whisper's own English normaliser (transformers'
   ``EnglishTextNormalizer``: lowercase, punctuation and fillers such as "um"/"uh"
   dropped, spelled numbers and digits both to digits, "mr" -> "mister", ...), then
   split into words.
2. Word errors = expected words not found, in order, in the spoken words: n minus the
   longest common subsequence of the n expected words and the best span of at most 2n
   spoken words. Extra words (a leftover "jarvis", an ASR-inserted "I"/"and" between
   isolated words) cost nothing, but at most n of them fit in the span; a missing,
   misheard or reordered word costs one.
3. The words match when errors <= floor(tolerance x n) (``identity.phrase_tolerance``,
   0.25: one per four words; a three-word phrase must be heard whole). Measured in
   agent/evals/phrase_eval.py.

A passphrase is stored only as ``PhraseKey``: a random salt and, per normalised word,
``scrypt(word, salt)`` (16 bytes, hex). Matching runs on those digests, so the text is
never kept. Per-word digests are what makes ASR-error tolerance possible; their cost is
that each word can be attacked on its own (a dictionary attack on a stolen profile costs
about vocabulary size x one scrypt per word, the salt only stops precomputed tables).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from tools.common.errors import ErrorCode, MMChatError

SCHEME = "scrypt-words-1"
SCRYPT = {"n": 2 ** 12, "r": 8, "p": 1}  # ~4 MB, ~10 ms per word on this CPU
DIGEST_BYTES, SALT_BYTES = 16, 16
MIN_WORDS = 3


@lru_cache(maxsize=1)
def _normaliser() -> Any:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def words(text: str) -> list[str]:
    """Normalised words of ``text`` (see the module docstring)."""
    return _normaliser()(text or "").split()


def allowed_errors(n_words: int, tolerance: float) -> int:
    return int(n_words * tolerance + 1e-9)


def word_errors(expected: Sequence[str], spoken: Sequence[str]) -> int:
    """Expected words missing from the best in-order alignment with a span of <= 2n spoken words."""
    from rapidfuzz.distance import LCSseq

    n, exp = len(expected), list(expected)
    if not spoken:
        return n
    width = min(len(spoken), 2 * n)
    best = max(LCSseq.similarity(exp, list(spoken[i:i + width])) for i in range(len(spoken) - width + 1))
    return n - best


def phrase_match(expected: Sequence[str], spoken: Sequence[str], tolerance: float) -> tuple[bool, int]:
    """(match, word errors) of normalised word (or digest) sequences."""
    errors = word_errors(expected, spoken)
    return errors <= allowed_errors(len(expected), tolerance), errors


def _digest(word: str, salt: bytes) -> str:
    return hashlib.scrypt(word.encode(), salt=salt, dklen=DIGEST_BYTES, **SCRYPT).hex()


@dataclass(frozen=True)
class PhraseKey:
    """A passphrase as salted per-word digests, plus the voice embeddings of its enrolment takes."""

    salt: str
    digests: tuple[str, ...]
    voice: tuple[tuple[float, ...], ...] = field(default=())

    @classmethod
    def create(cls, text: str, voice: Sequence[Sequence[float]] = ()) -> "PhraseKey":
        ws = words(text)
        if len(ws) < MIN_WORDS:
            raise MMChatError(f"passphrase too short: it needs at least {MIN_WORDS} words", ErrorCode.BAD_INPUT)
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(salt.hex(), tuple(_digest(w, salt) for w in ws), tuple(tuple(map(float, v)) for v in voice))

    def hashed(self, spoken: Sequence[str]) -> list[str]:
        salt = bytes.fromhex(self.salt)
        cache = {w: _digest(w, salt) for w in set(spoken)}
        return [cache[w] for w in spoken]

    def match(self, text: str, tolerance: float) -> tuple[bool, int]:
        """(match, word errors) of a transcript against the passphrase."""
        return phrase_match(self.digests, self.hashed(words(text)), tolerance)

    def as_json(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "scrypt": SCRYPT, "salt": self.salt, "digests": list(self.digests),
                "voice": [list(v) for v in self.voice]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PhraseKey":
        if d.get("scheme") != SCHEME or d.get("scrypt") != SCRYPT:
            raise MMChatError(f"passphrase record of an unknown scheme {d.get('scheme')!r}; set it again",
                              ErrorCode.PROFILE)
        return cls(str(d["salt"]), tuple(d["digests"]), tuple(tuple(v) for v in d.get("voice", [])))
