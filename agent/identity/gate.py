"""The speaker check of the session: voice of the command + face in view, same enrolled user.

Faces come from a FaceFeed: a video file synchronised with the audio (stream
time = video time), a still image (cannot show liveness), the camera, or none.
Each feed is a view by stream time over one of the frame sources the camera stage
reads (tools/vision/capture.py): a ``StillSource``, a ``VideoFile``, or a live
camera's ``TeeSource`` keeping its recent frames.
The decision itself reuses agent.identity.verify (best_voice, best_face, decide).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from agent.common import phrases
from agent.common.config import Settings
from agent.identity.faces import FaceError, read_image_bgr, video_encodings
from agent.identity.liveness import LivenessResult
from agent.identity.profiles import Profile
from agent.identity.verify import Decision, IdentityChecker, Match, best_face, best_voice, decide
from tools.common.errors import ErrorCode, MMChatError
from tools.common.settings import DeviceSettings

if TYPE_CHECKING:
    from tools.vision.camera import FrameSource
    from tools.vision.capture import VideoFile

VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class FaceFeed(Protocol):
    kind: str  # video | image | camera | none
    still: bool  # a single photo: no liveness possible
    path: Path | None  # the file shown (image, video); None for a camera or nothing
    source: FrameSource | None  # a live camera's reader, shared with the camera stage; None otherwise

    def frames(self, t: float, window_s: float, n: int) -> list[np.ndarray]:
        """Up to ``n`` BGR frames from the ``window_s`` before stream time ``t`` (empty: nothing in view)."""
        ...

    def sync(self, t0_monotonic: float) -> None:
        """Stream time 0 is this moment on the monotonic clock (a live camera's frames are timed by it)."""
        ...

    def close(self) -> None: ...


class FeedBase:
    """Defaults of the optional FaceFeed members: no file, no reader, no clock to sync, nothing to close."""

    path: Path | None = None
    source: FrameSource | None = None

    def sync(self, t0_monotonic: float) -> None:
        pass

    def close(self) -> None:
        pass


class NoFace(FeedBase):
    kind, still = "none", False

    def frames(self, t: float, window_s: float, n: int) -> list[np.ndarray]:
        return []


class ImageFace(FeedBase):
    """One photo (a ``StillSource``), shown all the time."""

    kind, still = "image", True

    def __init__(self, path: str | Path) -> None:
        from tools.vision.capture import StillSource

        self.path = Path(path)
        self.image = StillSource(read_image_bgr(path))

    def frames(self, t: float, window_s: float, n: int) -> list[np.ndarray]:
        return [self.image.image]


class VideoFace(FeedBase):
    """A recording (a ``VideoFile``) that runs alongside the audio; nothing in view after it ends."""

    kind, still = "video", False

    def __init__(self, path: str | Path) -> None:
        from tools.vision.capture import VideoFile

        self.path = Path(path)
        try:
            self.video: VideoFile = VideoFile(path)
        except MMChatError as e:  # FaceError now if the file is unreadable
            raise FaceError(str(e)) from None

    def frames(self, t: float, window_s: float, n: int) -> list[np.ndarray]:
        end = self.video.duration
        if t - window_s > end:
            return []
        return [f for _, f in self.video.window(max(0.0, min(t, end) - window_s), window_s, n)]


class CameraFace(FeedBase):
    """The live camera (a device, a stream URL, or a video file played as one), shared with the camera stage.

    One reader: the camera stage reads the device through ``source`` (a TeeSource) and frames are
    also kept in ``recent``; the gate samples the window before stream time ``t`` from there (``sync``
    ties stream time 0 to the camera's monotonic clock when the session starts).
    """

    kind, still = "camera", False

    def __init__(self, spec: str | int = 0, keep_s: float = 8.0, devices: DeviceSettings = DeviceSettings()) -> None:
        """``devices``: how long the newest frame may be old before the check says "camera stopped", and
        how the reader rides out a lost camera."""
        from tools.vision.camera import RecentFrames, TeeSource
        from tools.vision.capture import open_source

        self.spec, self.stale_s = spec, devices.camera_stale_s
        self.recent = RecentFrames(keep_s)
        self.source: FrameSource | None = TeeSource(open_source(spec, devices=devices), self.recent.add)  # DEVICE / IMAGE_INVALID errors now
        self.t0: float | None = None

    def sync(self, t0_monotonic: float) -> None:
        self.t0 = t0_monotonic

    def frames(self, t: float, window_s: float, n: int) -> list[np.ndarray]:
        newest = self.recent.newest()
        silent = time.monotonic() - newest if newest is not None else None
        if silent is None or silent > self.stale_s:  # the reader stopped: say so rather than "no face"
            raise MMChatError(f"camera stopped: no frame from {self.spec} for "
                              f"{'ever' if silent is None else f'{silent:.0f} s'}", ErrorCode.DEVICE)
        return self.recent.window(window_s, n, now=self.wall(t))

    def wall(self, t: float) -> float | None:
        """The monotonic time of stream time ``t`` (None before ``sync``: now)."""
        return None if self.t0 is None else self.t0 + t

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


def make_face_feed(settings: Settings, video: str | None = None, face: str | None = None,
                   live: bool = False, camera: str | None = None) -> FaceFeed:
    """--video, else --face, else --camera (or ``session.camera`` when live), else ``session.face.fallback``,
    else none."""
    path = video or face
    if path is None and (camera is not None or live):
        return CameraFace(camera if camera is not None else settings.session.camera,
                          keep_s=settings.session.face.window_s + 5.0, devices=settings.devices)  # checks run a few seconds late at most
    if path is None and settings.session.face.fallback:
        fallback = settings.path(settings.session.face.fallback)
        path = str(fallback) if fallback.is_file() else None
    if path is None:
        return NoFace()
    return VideoFace(path) if Path(path).suffix.lower() in VIDEO_EXT else ImageFace(path)


class IdentityGate:
    """Voice (the command audio) and face (the feed at that moment) against all profiles."""

    def __init__(self, settings: Settings, feed: FaceFeed, checker: IdentityChecker | None = None) -> None:
        self.settings = settings
        self.cfg = settings.identity
        self.face = settings.session.face
        self.feed = feed
        self.checker = checker or IdentityChecker(settings)

    def warm_up(self) -> None:
        """Load the voice and face models before the stream starts."""
        _ = self.checker.voiceprint, self.checker.faces

    def face_present(self, t: float) -> bool:
        frames = self.feed.frames(t, 0.5, 1)
        return any(self.checker.faces.scan(np.ascontiguousarray(f[:, :, ::-1])).boxes for f in frames)

    def same_voice(self, audio: np.ndarray, user: str) -> tuple[bool, float | None]:
        """A later turn: does this speech match ``user``'s voiceprint? (accepts, score)."""
        profile = next((p for p in self.checker.store.load_all() if p.name == user), None)
        if profile is None:
            return False, None
        try:
            emb = self.checker.voice_embedding(audio)
        except MMChatError as e:
            if e.code is ErrorCode.NO_SPEECH:  # too little speech to judge: like a short utterance, it passes
                return True, None
            raise
        m = best_voice(emb, [profile], self.cfg.voice_threshold)
        return m.ok, m.value

    def check(self, audio: np.ndarray, t: float) -> Decision:
        """The decision for the command audio at stream time ``t``; an accept carries the user's prefs."""
        profiles = self.checker.store.load_all()
        res = self._check(audio, t, profiles)
        profile = next((p for p in profiles if p.name == res.user), None) if res.user else None
        if profile is not None:
            res.prefs, res.has_key = profile.prefs, profile.key is not None
        return res

    def _doubtful(self, vm: Match) -> bool:
        """on_doubt: a voice score in the grey zone is challenged rather than decided."""
        low, high = self.cfg.grey_zone
        return self.cfg.challenge == "on_doubt" and vm.value is not None and low <= vm.value < high

    def _no_face(self, vm: Match, reason: str, spoken: str, details: dict) -> Decision:
        """The face is missing: a refusal, or under on_doubt a challenge for the voice's user."""
        if self.cfg.challenge == "on_doubt" and vm.ok:
            return Decision("doubt", vm.user, reason, "", details)
        return Decision("reject", None, reason, phrases.refusal(spoken), details)

    def _check(self, audio: np.ndarray, t: float, profiles: list[Profile]) -> Decision:
        t0 = time.perf_counter()
        cfg, details = self.cfg, dict[str, Any](face_source=self.feed.kind)
        if not profiles:
            return Decision("reject", None, "no profiles enrolled", phrases.refusal(phrases.NOBODY_ENROLLED), details)
        try:
            vm = best_voice(self.checker.voice_embedding(audio), profiles, cfg.voice_threshold)
        except MMChatError as e:
            return Decision("reject", None, f"voice: {e}", phrases.refusal(phrases.VOICE_TOO_SHORT), details)
        details["voice_score"] = None if vm.value is None else round(vm.value, 4)
        details["voice_user"] = vm.user
        details.update(vm.explain("voice"))  # threshold, margin, normalisation: the decision explains itself
        if self._doubtful(vm):
            vm, details["voice_doubt"] = Match(vm.user, vm.value, True), True
        if not vm.ok:
            return self._done(vm, None, None, t0, details)
        if not cfg.require_face:
            return self._done(vm, None, None, t0, details)
        if self.feed.kind == "none":
            return self._no_face(vm, "face check unavailable: no --video, camera or session.face.fallback",
                                 phrases.NO_CAMERA, details)
        if self.feed.still and cfg.require_liveness and not self.face.allow_still:
            return Decision("reject", None, "face check refused: a still image cannot show liveness "
                              "(identity.require_liveness; session.face.allow_still is off)",
                              phrases.refusal(phrases.STILL_PHOTO), details)
        try:
            frames = self.feed.frames(t, self.face.window_s, cfg.video_frames)
        except MMChatError as e:  # e.g. the camera stopped
            return self._no_face(vm, f"face check failed: {e}", phrases.CAMERA_BROKEN, details)
        encs = video_encodings([(0.0, f) for f in frames], self.checker.faces)
        if not encs:
            return self._no_face(vm, "no face in view", phrases.NO_FACE, details)
        fm = best_face(encs, profiles, cfg.face_threshold)
        details["face_distance"], details["face_user"] = round(fm.value, 4) if fm.value is not None else None, fm.user
        details.update(fm.explain("face"))
        live = None
        if cfg.require_liveness and not self.feed.still:
            live = self.checker.liveness(self.feed.frames(t, self.face.window_s, cfg.liveness_frames))
            details["liveness"] = live.as_json()
        elif self.feed.still:
            details["liveness"] = "not checked: still image (session.face.allow_still)"
        return self._done(vm, fm, live, t0, details)

    def _done(self, vm: Match, fm: Match | None, live: LivenessResult | None, t0: float,
              details: dict) -> Decision:
        user, reason = decide(vm, fm, self.cfg.voice_threshold, self.cfg.face_threshold, live)
        details["verify_s"] = round(time.perf_counter() - t0, 3)
        if user:
            return Decision("doubt" if details.get("voice_doubt") else "accept", user, reason, "", details)
        if not vm.ok:
            spoken = phrases.refusal(phrases.VOICE_UNKNOWN)
        elif fm is not None and not fm.ok:
            spoken = phrases.refusal(phrases.FACE_MISMATCH)
        elif live is not None and not live.live:
            spoken = phrases.refusal(phrases.NOT_LIVE)
        else:
            spoken = phrases.refusal(phrases.DIFFERENT_PEOPLE)
        return Decision("reject", None, reason, spoken, details)


__all__ = ["FaceError", "FaceFeed", "Decision", "IdentityGate", "make_face_feed"]
