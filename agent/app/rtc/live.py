"""Live settings of one browser session: validated like config.yaml, applied without a restart.

The seed's sliders (max faces, min detection and tracking confidence) and the session's: wake
threshold, gesture hold time, emotion smoothing and the detector's score threshold. A change goes to
the running stages under their own locks; a bad value is refused whole with a coded one-line error.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from agent.common.config import Settings
from tools.common.errors import ErrorCode, MMChatError
from tools.common.settings import FrozenModel


class LiveSettings(FrozenModel):
    """What a client may tune while it runs (unknown keys and out-of-range values refused)."""

    max_faces: int = Field(4, ge=1, le=20)
    min_detection_confidence: float = Field(0.5, gt=0.0, lt=1.0)
    min_tracking_confidence: float = Field(0.5, gt=0.0, lt=1.0)  # MediaPipe hands in video mode
    wake_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    gesture_hold_ms: float = Field(700.0, ge=0.0, le=10000.0)
    emotion_smoothing: float = Field(0.5, gt=0.0, le=1.0)  # EMA weight of the newest frame (1: none)
    detector_score_threshold: float = Field(0.35, gt=0.0, lt=1.0)

    @classmethod
    def of(cls, s: Settings) -> "LiveSettings":
        v = s.vision
        return cls(max_faces=v.max_faces, min_detection_confidence=v.min_detection_confidence,
                   wake_threshold=s.wake.threshold, gesture_hold_ms=v.gesture_hold_ms,
                   emotion_smoothing=v.emotion_ema_alpha, detector_score_threshold=s.detector.score_threshold)

    def merged(self, changes: Any) -> "LiveSettings":
        """These settings with ``changes`` (a JSON object) applied; MMChatError(bad-input) naming the key."""
        if not isinstance(changes, dict):
            raise MMChatError("settings must be a JSON object", ErrorCode.BAD_INPUT)
        try:
            return LiveSettings(**{**self.model_dump(), **changes})
        except ValidationError as e:
            err = e.errors()[0]
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            key = ".".join(str(p) for p in err["loc"]) or "(settings)"
            raise MMChatError(f"settings: {key}: {msg}", ErrorCode.BAD_INPUT) from None

    def settings(self, base: Settings) -> Settings:
        """``base`` with these values: what a new session of this client is built from."""
        return base.model_copy(update={
            "vision": base.vision.model_copy(update={
                "max_faces": self.max_faces, "min_detection_confidence": self.min_detection_confidence,
                "gesture_hold_ms": self.gesture_hold_ms, "emotion_ema_alpha": self.emotion_smoothing}),
            "wake": base.wake.model_copy(update={"threshold": self.wake_threshold}),
            "detector": base.detector.model_copy(update={"score_threshold": self.detector_score_threshold})})


def apply_to_processor(processor: Any, old: LiveSettings | None, new: LiveSettings, settings: Settings) -> None:
    """Change a running camera stage's processor (``tools.vision.camera.FrameProcessor``) in place.

    ``old`` None: the processor was just built from ``settings`` (only what config.yaml cannot say,
    the hands' tracking confidence, is applied).
    """
    import mediapipe as mp

    from tools.vision.faces import FaceFinder

    analyser = getattr(processor.analyser, "inner", processor.analyser)
    with processor._lock:  # between two frames
        if analyser is not None:
            if old is not None and (old.max_faces, old.min_detection_confidence) != \
                    (new.max_faces, new.min_detection_confidence) and analyser.face_finder is not None:
                previous, analyser.face_finder = analyser.face_finder, FaceFinder(new.max_faces,
                                                                                   new.min_detection_confidence)
                previous.close()
            if analyser.hand_model is not None and (old is None or (old.min_detection_confidence,
                                                                    old.min_tracking_confidence) !=
                                                    (new.min_detection_confidence, new.min_tracking_confidence)):
                cfg = settings.vision
                previous, analyser.hand_model = analyser.hand_model, mp.solutions.hands.Hands(
                    static_image_mode=not analyser.video, max_num_hands=cfg.max_hands,
                    model_complexity=cfg.hand_model_complexity,
                    min_detection_confidence=new.min_detection_confidence,
                    min_tracking_confidence=new.min_tracking_confidence)
                previous.close()
            analyser.smoother.alpha = new.emotion_smoothing if analyser.video else 1.0
            analyser.debouncer.hold_ms = new.gesture_hold_ms
    if old is not None and old.detector_score_threshold != new.detector_score_threshold:
        processor.detector_cfg = processor.detector_cfg.model_copy(
            update={"score_threshold": new.detector_score_threshold})
        processor.reset()  # the tracker is rebuilt with the new threshold (track ids start again)


def apply_to_session(parts: Any, new: LiveSettings) -> None:
    """The session's own stages: the wake word's threshold, the gesture switch's hold time."""
    wake = parts.wake
    if hasattr(wake, "settings"):
        wake.settings = wake.settings.model_copy(update={"threshold": new.wake_threshold})
    hook = parts.perception
    if hook is not None and hook.gestures is not None:
        hook.gestures.debouncer.hold_ms = new.gesture_hold_ms
