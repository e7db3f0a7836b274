"""Settings: frozen pydantic models loaded from config.yaml.

Unknown keys and wrong types are refused with a one-line error naming the key,
e.g. ``config.yaml: llm.backend: Input should be 'embedded', 'ollama' or 'openai'``.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, model_validator

from agent.common.model_profiles import Profile, apply_profile
from tools.common.errors import ConfigError
from tools.common.settings import (
    AffectSettings,
    DetectorSettings,
    DeviceSettings,
    Emotion,
    FaceIdSettings,
    FrozenModel,
    SlamSettings,
    VisionSettings,
)

__all__ = ["Emotion", "FrozenModel", "Settings", "load_settings", "new_run_dir", "replaced"]
M = TypeVar("M", bound=FrozenModel)


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
    # CTranslate2 compute type: the shipped fp16 weights are converted to it at load
    compute_type: Literal["int8", "int8_float32", "float32"] = "int8"


class TTSSettings(FrozenModel):
    voice: str = "en_US-joe-medium"
    length_scale: float = Field(1.0, gt=0.2, lt=4.0)


class ControllerSettings(FrozenModel):
    history_turns: int = Field(3, ge=0, le=20)
    default_emotion: Emotion = "neutral"
    max_user_chars: int = Field(2000, ge=20)
    router: bool = True  # MiniLM semantic router beside the LLM (agent/think/router.py)
    # torch (sentence-transformers) | torch-int8 (dynamic int8 Linear) | onnx | onnx-int8dyn (onnxruntime)
    router_model: Literal["torch", "torch-int8", "onnx", "onnx-int8dyn"] = "torch"
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
    # ECAPA's embedding network: torch (speechbrain) | onnx | onnx-int8dyn (onnxruntime, built at install)
    voiceprint_model: Literal["torch", "onnx", "onnx-int8dyn"] = "torch"
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
    # audio key (agent/identity/phrase.py, agent/identity/audio_key.py)
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


class CommandSettings(FrozenModel):
    """``session.command``: from the wake word to the command, and the words that end the session."""

    wake_timeout_s: float = Field(8.0, gt=0.0, le=60.0)  # wake word, then no command: back to locked
    lookback_s: float = Field(0.3, ge=0.0, le=2.0)  # command audio kept from before the detection
    min_s: float = Field(0.5, ge=0.1, le=5.0)  # shorter leftovers after the wake word are ignored
    goodbye: list[str] = ["goodbye", "good bye", "bye bye", "see you later", "that's all"]


class FaceCheckSettings(FrozenModel):
    """``session.face``: the face the gate and the unlocked session look for."""

    window_s: float = Field(3.0, gt=0.0, le=30.0)  # video before the command examined by the gate
    check_s: float = Field(2.0, ge=0.5, le=60.0)  # while unlocked, how often the face is looked for
    gone_checks: int = Field(2, ge=1, le=20)  # consecutive misses that lock the session
    allow_still: bool = False  # a still photo may pass the face check (it cannot show liveness)
    fallback: str | None = None  # face image/video of the demo user, used when no --video is given
    sync_dir: str | None = None  # <dir>/<name>/*.jpg synced into the profiles at start (run, serve)


class TurnSettings(FrozenModel):
    """``session.turns``: while unlocked: idle lock, whose voice is answered, locking modes, barge-in."""

    idle_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)  # no speech this long: lock
    reverify_voice: bool = False  # while unlocked, answer only the unlocked user's voice ...
    reverify_min_s: float = Field(1.5, ge=0.5, le=10.0)  # ... judged on utterances this long (shorter pass)
    lock_modes: list[Literal["conversation", "tracking", "mapping", "privacy", "sleep"]] = ["privacy", "sleep"]
    barge_in_ratio: float = Field(2.0, ge=1.0, le=20.0)  # mic RMS over the expected echo to count as the user
    barge_in_ms: int = Field(240, ge=30, le=3000)  # voiced, loud-enough audio needed to interrupt


class EchoSettings(FrozenModel):
    """``session.echo``: our own voice in the mic: its coupling, the canceller, the tail still treated as echo."""

    gain: float = Field(0.3, ge=0.0, le=1.0)  # speaker-to-mic coupling: simulated echo and barge-in
    delay_ms: int = Field(20, ge=0, le=500)  # speaker-to-mic delay of the simulated echo (recordings)
    aec: Literal["webrtc", "none"] = "webrtc"  # echo canceller on the mic signal (agent/listen/echo.py)
    aec_delay_ms: int = Field(0, ge=0, le=500)  # speaker-to-mic delay hint (0 for recordings)
    tail_ms: int = Field(300, ge=0, le=3000)  # after playback, still treated as our own echo


class SessionSettings(FrozenModel):
    """Hands-free session (agent/session/state.py, agent/session/stages.py): devices at the top, then one
    section per concern."""

    source: Literal["file", "mic"] = "file"  # default audio source (--live picks mic)
    sink: Literal["wav", "speaker"] = "wav"  # reply audio: WAV files under runs/ or the loudspeaker
    camera: str | int = 0  # --live camera: device index, stream URL, or a video file played as a camera
    command: CommandSettings = CommandSettings()
    face: FaceCheckSettings = FaceCheckSettings()
    turns: TurnSettings = TurnSettings()
    echo: EchoSettings = EchoSettings()


class ServeSettings(FrozenModel):
    """``main.py serve`` (agent/app/server.py)."""

    lock_wait_s: float = Field(120.0, gt=0.0, le=3600.0)  # a request waits this long for the models, then 503
    max_clients: int = Field(4, ge=1, le=64)  # live browser sessions at once (agent/app/rtc); more get 503
    rtc_max_width: int = Field(960, ge=160, le=3840)  # browser camera frames are scaled down to this width


# Sections for later stages are defined above this line (one FrozenModel each)
# and added as fields of Settings below.


class Settings(FrozenModel):
    profile: Profile = "balanced"  # the model variants (agent/common/model_profiles.py); keys set here win
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
    devices: DeviceSettings = DeviceSettings()
    root: Path = Field(default_factory=lambda: Path(__file__).resolve().parents[2], exclude=True)

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


def new_run_dir(settings: Settings) -> Path:
    """A fresh ``runs/<YYYYmmdd-HHMMSS>`` folder for a run's audio and events (``-2``... for a second run in
    the same second); StorageError (code storage-failed) when it cannot be made."""
    from agent.common.saving import fresh_dir

    return fresh_dir(settings.path(settings.paths.runs) / datetime.now().strftime("%Y%m%d-%H%M%S"))


def replaced(model: M, path: str, **values: Any) -> M:
    """A copy of ``model`` with ``values`` set in its section at the dotted ``path``, e.g.
    ``replaced(settings, "session.face", allow_still=True)`` (not validated again, as ``model_copy``)."""
    if not path:
        return model.model_copy(update=values)
    head, _, rest = path.partition(".")
    return model.model_copy(update={head: replaced(getattr(model, head), rest, **values)})


def _merged(base: dict, over: dict) -> dict:
    """``over`` on ``base``, nested sections merged key by key (a value that is not a mapping replaces)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _key(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_settings(path: str | Path | None = "config.yaml", overrides: dict | None = None,
                  profile: str | None = None) -> Settings:
    """Read and validate a YAML config; raise ConfigError naming the bad key.

    The profile (``profile`` here, else the file's ``profile`` key) fills in the model keys the
    file leaves out; ``overrides`` ({section: {key: value}}, nested sections merged key by key) win over both."""
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
        root = Path(__file__).resolve().parents[2]
    data = apply_profile(data, profile)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {})
        if isinstance(data[section], dict):
            data[section] = _merged(data[section], values)
    try:
        return Settings(**data, root=root)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ConfigError(f"{name}: {_key(err['loc'])}: {msg}{more}") from None
