"""Settings: frozen pydantic models loaded from config.yaml.

Unknown keys and wrong types are refused with a one-line error naming the key,
e.g. ``config.yaml: llm.backend: Input should be 'embedded', 'ollama' or 'openai'``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError

Emotion = Literal["neutral", "happy", "sad", "angry", "surprised", "worried"]


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMSettings(FrozenModel):
    backend: Literal["embedded", "ollama", "openai"] = "embedded"
    # embedded: an asset name from the model cache or a path to a .gguf file;
    # ollama/openai: the server's model name.
    model: str = "qwen2.5-coder-1.5b"
    url: str | None = None  # ollama: http://127.0.0.1:11434  openai: http://host:8000/v1
    api_key: str | None = None
    n_ctx: int = Field(4096, ge=512, le=32768)
    n_threads: int = Field(2, ge=1, le=64)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(160, ge=16, le=2048)
    timeout_s: float = Field(60.0, gt=0)


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
    warm_up: bool = True


class PathSettings(FrozenModel):
    cache: str = "~/.cache/mmchat"
    profiles: str = "profiles"
    runs: str = "runs"
    testdata: str = "../shared/testdata"


# Sections for later stages are defined above this line (one FrozenModel each)
# and added as fields of Settings below.


class Settings(FrozenModel):
    llm: LLMSettings = LLMSettings()
    asr: ASRSettings = ASRSettings()
    tts: TTSSettings = TTSSettings()
    controller: ControllerSettings = ControllerSettings()
    paths: PathSettings = PathSettings()
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
