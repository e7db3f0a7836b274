"""Enrolment and the identity decision: voice and/or face (image or video) vs all profiles.

With both inputs, ``accept`` needs voice and face to match the same user. A video
probe must also pass liveness when ``identity.require_liveness`` is set.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings
from agent.identity.faces import (
    DlibFaceEncoder,
    FaceEncoder,
    FaceError,
    encode_image,
    face_distance,
    sample_video,
    video_encodings,
)
from agent.identity.liveness import LivenessResult, MediaPipeFaceMesh, check_liveness
from agent.identity.phrase import PhraseKey
from agent.identity.profiles import Profile, ProfileStore, check_name
from agent.identity.voiceprint import EcapaVoiceprint, Voiceprint, cosine_score
from tools.common.errors import MMChatError
from tools.common.pcm import speech_only


@dataclass
class Match:
    """Best-matching profile for one modality."""

    user: str | None
    value: float | None  # voice: cosine score (higher = closer); face: distance (lower = closer)
    ok: bool
    threshold: float | None = None  # what ``value`` was held against

    def explain(self, kind: str) -> dict[str, Any]:
        """The decision's numbers: ``<kind>_threshold`` and ``<kind>_margin`` (how far past it; > 0 passes
        for voice, < 0 for face). Voice scores are raw cosines: no score normalisation (AS-norm was worse
        on same-channel impostors, agent/evals/same_channel.py), so ``voice_norm`` is "none"."""
        margin = None if self.value is None or self.threshold is None else round(self.value - self.threshold, 4)
        out = {f"{kind}_threshold": self.threshold, f"{kind}_margin": margin}
        return {**out, "voice_norm": "none"} if kind == "voice" else out


@dataclass
class Decision:
    """The one identity decision: ``verify`` (CLI, server) and the session's gate both return it."""

    decision: str  # accept | reject | doubt (identity.challenge on_doubt: a challenge decides)
    user: str | None
    reason: str  # for the log
    spoken: str = ""  # the gate's one sentence for the user (a refusal)
    details: dict[str, Any] = field(default_factory=dict)  # scores, thresholds, margins (session event)
    prefs: dict[str, Any] = field(default_factory=dict)  # the accepted user's profile preferences
    has_key: bool = False  # the user has a passphrase (agent.identity.audio_key: the next step of the unlock)
    voice: Match | None = None
    face: Match | None = None
    liveness: LivenessResult | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        return {"decision": self.decision, "user": self.user, "reason": self.reason, **self.details}

    @property
    def passed(self) -> bool:
        """accept, or doubt (a challenge decides)."""
        return self.decision in ("accept", "doubt") and self.user is not None

    def as_json(self) -> dict[str, Any]:
        def r(m: Match | None, nd: int) -> float | None:
            return None if m is None or m.value is None else round(m.value, nd)

        out: dict[str, Any] = {
            "user": self.user, "voice_score": r(self.voice, 4), "face_distance": r(self.face, 4),
            "decision": self.decision, "reason": self.reason,
            "voice_user": self.voice.user if self.voice else None,
            "face_user": self.face.user if self.face else None,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
        for kind, m in (("voice", self.voice), ("face", self.face)):
            if m is not None:
                out.update(m.explain(kind))
        if self.liveness is not None:
            out["liveness"] = self.liveness.as_json()
        return out


def best_voice(emb: np.ndarray, profiles: list[Profile], threshold: float) -> Match:
    scored = [(cosine_score(emb, p.voice), p.name) for p in profiles if len(p.voice)]
    if not scored:
        return Match(None, None, False, threshold)
    score, name = max(scored)
    return Match(name, score, score >= threshold, threshold)


def best_face(encs: list[np.ndarray], profiles: list[Profile], threshold: float) -> Match:
    """Per profile, the median over probe encodings of the distance to its nearest enrolled face."""
    scored = [(float(np.median([face_distance(e, p.face) for e in encs])), p.name)
              for p in profiles if len(p.face)]
    if not scored:
        return Match(None, None, False, threshold)
    dist, name = min(scored)
    return Match(name, dist, dist <= threshold, threshold)


def decide(voice: Match | None, face: Match | None, threshold_v: float, threshold_f: float,
           liveness: LivenessResult | None = None) -> tuple[str | None, str]:
    """(accepted user or None, reason)."""
    problems = []
    if voice is not None and not voice.ok:
        problems.append("no enrolled voice" if voice.user is None else
                        f"voice score {voice.value:.2f} below {threshold_v:g} (closest {voice.user})")
    if face is not None and not face.ok:
        problems.append("no enrolled face" if face.user is None else
                        f"face distance {face.value:.2f} above {threshold_f:g} (closest {face.user})")
    if liveness is not None and not liveness.live:
        problems.append(f"liveness failed: {liveness.reason}")
    if problems:
        return None, "; ".join(problems)
    if voice is not None and face is not None and voice.user != face.user:
        return None, f"voice matches {voice.user} but face matches {face.user}"
    user = (voice or face).user  # type: ignore[union-attr]
    what = " and ".join(w for w, m in (("voice", voice), ("face", face)) if m is not None)
    verb = "match" if voice is not None and face is not None else "matches"
    return user, f"{what} {verb} {user}" + (f" ({liveness.reason})" if liveness else "")


class IdentityChecker:
    """Loads models on first use; embeds inputs, enrols and verifies against a ProfileStore."""

    def __init__(self, settings: Settings, voiceprint: Voiceprint | None = None,
                 face_encoder: FaceEncoder | None = None) -> None:
        self.settings = settings
        self.cfg = settings.identity
        self.store = ProfileStore(settings.path(settings.paths.profiles))
        self._voiceprint = voiceprint
        self._faces = face_encoder

    @property
    def voiceprint(self) -> Voiceprint:
        if self._voiceprint is None:
            self._voiceprint = EcapaVoiceprint.from_settings(self.settings)
        return self._voiceprint

    @property
    def faces(self) -> FaceEncoder:
        if self._faces is None:
            self._faces = DlibFaceEncoder(self.cfg.face_upsample)
        return self._faces

    def models(self) -> dict[str, str]:
        """Names of the embedding models (recorded in profile.json; loads nothing)."""
        return {"voice": (self._voiceprint or EcapaVoiceprint).name, "face": (self._faces or DlibFaceEncoder).name}

    def voice_embedding(self, audio: str | Path | np.ndarray) -> np.ndarray:
        """Unit voice embedding of the speech in a file or 16 kHz array (typed errors for bad input)."""
        name = Path(audio).name if isinstance(audio, (str, Path)) else "audio"
        a = load_audio(audio) if isinstance(audio, (str, Path)) else np.asarray(audio, np.float32)
        return self.voiceprint.embed(speech_only(a, self.cfg.min_speech_s, name))

    def enroll(self, name: str, voices: Sequence[str | Path], faces: Sequence[str | Path],
               prefs: dict[str, Any] | None = None, passphrase: str | None = None) -> Profile:
        """Embed every sample first, then add them (and ``prefs`` updates) to the profile in one save.

        Preferences alone may update an existing profile; a new one needs a sample. A ``passphrase``
        is kept as salted per-word digests plus the embeddings of this call's voice takes.
        """
        check_name(name)  # refuse a bad name before any model work
        if not voices and not faces and not (prefs and self.store.exists(name)):
            raise MMChatError("enroll needs at least one --voice or --face sample")
        if passphrase is not None and not voices:
            raise MMChatError("--passphrase needs --voice takes of the user (their voiceprint guards it)")
        key = PhraseKey.create(passphrase) if passphrase is not None else None
        v = [self.voice_embedding(p) for p in voices]
        f = [encode_image(p, self.faces) for p in faces]
        key_json = None if key is None else replace(key, voice=tuple(tuple(map(float, e)) for e in v)).as_json()
        return self.store.enroll(name, v, f, self.models(), prefs, key_json)

    def verify(self, voice: str | Path | np.ndarray | None = None, face: str | Path | None = None,
               video: str | Path | None = None, start_s: float | None = None,
               window_s: float | None = None) -> Decision:
        if voice is None and face is None and video is None:
            raise MMChatError("verify needs --voice, --face or --video")
        if face is not None and video is not None:
            raise MMChatError("give --face or --video, not both")
        cfg, timings = self.cfg, {}
        profiles = self.store.load_all()
        vm = fm = live = None
        if voice is not None:
            t0 = time.perf_counter()
            emb = self.voice_embedding(voice)
            vm = best_voice(emb, profiles, cfg.voice_threshold)
            timings["voice_s"] = time.perf_counter() - t0
        if face is not None or video is not None:
            t0 = time.perf_counter()
            if face is not None:
                encs = [encode_image(face, self.faces)]
            else:
                assert video is not None
                start = cfg.video_start_s if start_s is None else start_s
                window = cfg.video_window_s if window_s is None else window_s
                frames = sample_video(video, start, window, cfg.video_frames)
                encs = video_encodings(frames, self.faces)
                if not encs:
                    raise FaceError(f"no face found in {Path(video).name} between {start:g} and "
                                    f"{start + window:g} s")
            fm = best_face(encs, profiles, cfg.face_threshold)
            timings["face_s"] = time.perf_counter() - t0
            if video is not None and cfg.require_liveness:
                t0 = time.perf_counter()
                live = self.liveness([f for _, f in sample_video(video, start, window, cfg.liveness_frames)])
                timings["liveness_s"] = time.perf_counter() - t0
        if not profiles:
            return Decision("reject", None, "no profiles enrolled", voice=vm, face=fm, liveness=live, timings=timings)
        user, reason = decide(vm, fm, cfg.voice_threshold, cfg.face_threshold, live)
        return Decision("accept" if user else "reject", user, reason, voice=vm, face=fm, liveness=live, timings=timings)

    def liveness(self, frames: list[np.ndarray]) -> LivenessResult:
        mesh = MediaPipeFaceMesh()
        try:
            return check_liveness(frames, mesh, self.cfg.blink_ear_drop, self.cfg.motion_threshold)
        finally:
            mesh.close()
