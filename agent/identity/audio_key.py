"""The session's audio key: passphrase and challenge-response steps after the gate, and the lockout.

After the gate (voice + face) the conductor asks ``KeyPolicy`` what else an unlock needs:

* the user's passphrase (``enroll --passphrase``): the words of that same command utterance,
  checked against the salted per-word digests, in the user's voice (``PhraseJob``);
* a challenge (``identity.challenge``: ``always``, or ``on_doubt`` when the gate had doubts:
  a voice score in ``identity.grey_zone`` or no face): random words from
  ``identity.challenge_words`` are spoken ("Say: amber river seven."); the next utterance,
  ending within ``challenge_timeout_s`` of the prompt, must be those words in the user's voice.

Failed unlocks in a row (``max_failures``) start a lockout of ``lockout_s``, doubling each
time, said plainly. Events and logs carry scores, word counts and decisions, never a
transcript of a key utterance nor anything derived from the passphrase.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.common.config import IdentitySettings, Settings
from agent.common.phrases import wait_text
from agent.identity.phrase import PhraseKey, phrase_match, words
from agent.identity.voiceprint import cosine_score
from tools.common.errors import ConfigError, ErrorCode, MMChatError

MIN_WORDS_IN_LIST = 16


def load_words(path: Path) -> list[str]:
    """The challenge word list: one word a line, '#' comments; each must stay one word once normalised."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"identity.challenge_words: cannot read {path} ({type(e).__name__})") from None
    ws = sorted({w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith("#")})
    bad = [w for w in ws if len(words(w)) != 1]
    if bad or len(ws) < MIN_WORDS_IN_LIST:
        raise ConfigError(f"identity.challenge_words: {path.name} needs >= {MIN_WORDS_IN_LIST} single words"
                          + (f" (not single words: {', '.join(bad[:3])})" if bad else f" (has {len(ws)})"))
    return ws


@dataclass(frozen=True)
class PhraseJob:
    """Verify stage: are ``text``'s words the key (passphrase, or the challenge ``expected``), in ``user``'s voice?"""

    utt: Any  # agent.session.stages.Utterance
    user: str
    text: str
    kind: str  # passphrase | challenge
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyResult:
    ok: bool
    phrase_match: bool
    voice_score: float | None
    reason: str  # no words of the key or of the transcript

    def as_event(self) -> dict[str, Any]:
        return {"phrase_match": self.phrase_match, "voice_score": self.voice_score, "reason": self.reason}


def check_phrase(checker: Any, job: PhraseJob, cfg: IdentitySettings) -> KeyResult:
    """Run in the verify stage (``checker``: agent.identity.verify.IdentityChecker)."""
    profile = checker.store.load(job.user)
    if job.kind == "passphrase":
        if profile.key is None:
            return KeyResult(False, False, None, f"{job.user} has no passphrase")
        match, _ = PhraseKey.from_json(profile.key).match(job.text, cfg.phrase_tolerance)
    else:
        match, _ = phrase_match(words(" ".join(job.expected)), words(job.text), cfg.phrase_tolerance)
    try:
        emb = checker.voice_embedding(job.utt.audio)
    except MMChatError as e:
        return KeyResult(False, match, None, f"voice: {e}")  # too little speech fails here, never passes
    score = cosine_score(emb, profile.voice) if len(profile.voice) else -1.0
    if job.kind == "passphrase" and profile.key and profile.key.get("voice"):  # and the enrolment takes of the key
        score = min(score, cosine_score(emb, np.asarray(profile.key["voice"], np.float32)))
    voice_ok = score >= cfg.voice_threshold
    what = "words" if job.kind == "challenge" else "passphrase"
    reason = " and ".join(p for p in (f"{what} {'match' if match else 'do not match'}",
                                      f"voice score {score:.2f} {'>=' if voice_ok else '<'} {cfg.voice_threshold:g}"))
    return KeyResult(match and voice_ok, match, round(score, 4), reason)


def verify_phrase(settings: Settings, checker: Any, decision: Any, voice: str | Path, expect: str | None,
                  asr: Any = None) -> dict[str, Any]:
    """``main.py verify --voice WAV [--expect-phrase TEXT]``: the decision's JSON plus ``phrase_match``.

    The words are checked against ``expect``, else against the passphrase of the closest voice's user
    (null when neither applies); ``accept`` then also needs the words to match.
    """
    from agent.common.audio_io import load_audio

    out = decision.as_json()
    user = decision.voice.user if decision.voice is not None else None
    profile = checker.store.load(user) if user else None
    out["phrase_match"] = None
    if expect is None and (profile is None or profile.key is None):
        return out
    if expect is not None and not words(expect):
        raise MMChatError("--expect-phrase has no words", ErrorCode.BAD_INPUT)
    if asr is None:
        from agent.listen.asr import WhisperASR

        asr = WhisperASR(settings.asr, settings.models_dir)
    audio = load_audio(voice)
    text = asr.transcribe(audio).text
    if expect is not None:
        expected = words(expect)
        match, errors = phrase_match(expected, words(text), settings.identity.phrase_tolerance)
        ok = match
        out.update(phrase_source="expected", heard=text, phrase_errors=errors, phrase_words=len(expected))
    else:  # the stored passphrase: nothing about it (nor the transcript) is reported
        assert profile is not None
        res = check_phrase(checker, PhraseJob(_Audio(audio), profile.name, text, "passphrase"), settings.identity)
        match, ok = res.phrase_match, res.ok  # ok: also the voice vs the passphrase's own enrolment takes
        out.update(phrase_source="passphrase", key_voice_score=res.voice_score)
    out["phrase_match"] = match
    if not ok and out["decision"] == "accept":
        why = "the words do not match" if not match else "the voice does not match the passphrase takes"
        out.update(decision="reject", user=None, reason=f"{out['reason']}; {why}")
    return out


@dataclass(frozen=True)
class _Audio:
    audio: np.ndarray


class Lockout:
    """Failed unlocks in a row -> a lockout on stream time, doubling each time; a success resets the count."""

    def __init__(self, max_failures: int, first_s: float) -> None:
        self.max_failures, self.first_s = max_failures, first_s
        self.failures = self.lockouts = 0
        self.until = -math.inf

    def remaining(self, t: float) -> float:
        return max(0.0, self.until - t)

    def fail(self, t: float) -> float | None:
        """Count a failure; the lockout length if this one starts a lockout."""
        self.failures += 1
        if self.failures < self.max_failures:
            return None
        seconds = self.first_s * 2 ** self.lockouts
        self.failures, self.lockouts, self.until = 0, self.lockouts + 1, t + seconds
        return seconds

    def success(self) -> None:
        self.failures = self.lockouts = 0


@dataclass
class Challenge:
    user: str
    words: tuple[str, ...]
    uid: int  # the command utterance waiting for the unlock
    asked_t: float
    deadline: float | None = None  # set once the prompt has been spoken
    answers: set[int] = field(default_factory=set)  # utterance ids being checked


class KeyPolicy:
    """State of the audio-key steps for one session (used by the conductor's session thread only)."""

    def __init__(self, cfg: IdentitySettings, word_list: list[str]) -> None:
        self.cfg, self.word_list = cfg, word_list
        self.lockout = Lockout(cfg.max_failures, cfg.lockout_s)
        self.challenge: Challenge | None = None
        self._rng = secrets.SystemRandom()

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyPolicy":
        cfg = settings.identity
        return cls(cfg, load_words(settings.path(cfg.challenge_words)) if cfg.challenge != "off" else [])

    def wants_challenge(self, decision: str) -> bool:
        """After the gate (and passphrase): ``always``, or ``on_doubt`` when the gate was in doubt."""
        return self.cfg.challenge == "always" or (self.cfg.challenge == "on_doubt" and decision == "doubt")

    def ask(self, user: str, uid: int, t: float) -> Challenge:
        ws = tuple(self._rng.sample(self.word_list, self.cfg.challenge_length))
        self.challenge = Challenge(user, ws, uid, t)
        return self.challenge

    def prompt(self, c: Challenge) -> str:
        return f"Say: {', '.join(c.words)}."

    def spoken(self, t: float) -> None:
        """The prompt has been played: the answer's time starts."""
        if self.challenge is not None and self.challenge.deadline is None:
            self.challenge.deadline = t + self.cfg.challenge_timeout_s

    def expired(self, t: float) -> bool:
        """No answer in time (also when the prompt was never reported spoken, e.g. a TTS failure)."""
        c = self.challenge
        if c is None or c.answers:
            return False
        return t > (c.deadline if c.deadline is not None else c.asked_t + 3 * self.cfg.challenge_timeout_s)

    def late(self, end: float) -> bool:
        c = self.challenge
        return c is not None and c.deadline is not None and end > c.deadline

    def failed(self, t: float) -> str | None:
        """Count a failed unlock: the plain lockout sentence if a lockout starts now."""
        self.challenge = None
        seconds = self.lockout.fail(t)
        return None if seconds is None else wait_text(seconds)

    def passed(self) -> None:
        self.challenge = None
        self.lockout.success()


__all__ = ["Challenge", "KeyPolicy", "KeyResult", "Lockout", "PhraseJob", "check_phrase",
           "load_words", "verify_phrase", "wait_text"]
