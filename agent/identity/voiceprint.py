"""Speaker embeddings: speechbrain's ECAPA-TDNN (spkrec-ecapa-voxceleb), fully offline.

The checkpoint comes from the model cache (``models/ecapa-voxceleb``, see
scripts/fetch_models.py); the architecture is read from its ``hyperparams.yaml``
and the weights are loaded directly, so no hub access and no Pretrainer.
"""
from __future__ import annotations

import importlib.machinery
import importlib.metadata
import logging
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tools.common.errors import AudioError, ErrorCode, ModelMissingError
from tools.common.pcm import SAMPLE_RATE

if TYPE_CHECKING:
    from agent.common.config import Settings

log = logging.getLogger(__name__)

ECAPA_DIR = "ecapa-voxceleb"
_lock = threading.Lock()


class Voiceprint(Protocol):
    """A speaker-embedding model: audio in, unit-length vector out."""

    name: str

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """float32 mono 16 kHz audio -> L2-normalised embedding."""
        ...


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def mean_embedding(embeddings: np.ndarray) -> np.ndarray:
    """Unit-length mean of unit-length embeddings (rows)."""
    return _unit(np.atleast_2d(embeddings).mean(axis=0))


def cosine_score(embedding: np.ndarray, enrolled: np.ndarray) -> float:
    """Cosine similarity of one embedding with the mean of the enrolled ones."""
    return float(_unit(embedding) @ mean_embedding(enrolled))


def _stub_broken_torchaudio() -> None:
    """Let speechbrain import when torchaudio's C extension cannot load.

    PyPI's torchaudio is a CUDA build; with the CPU torch, ``import torchaudio``
    raises OSError, and speechbrain imports it at package import. The ECAPA path
    (Fbank, ECAPA_TDNN) is pure torch, so a placeholder module is enough: any
    attribute use raises AttributeError naming the cause. A working torchaudio is
    left untouched.
    """
    try:
        import torchaudio  # noqa: F401

        return
    except (ImportError, OSError) as e:
        reason = f"{type(e).__name__}: {e}"
    for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
        del sys.modules[name]
    stub = types.ModuleType("torchaudio", "placeholder: the installed torchaudio does not load")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    try:
        stub.__version__ = importlib.metadata.version("torchaudio")
    except importlib.metadata.PackageNotFoundError:
        stub.__version__ = "0.0.0"

    def _missing(attr: str) -> None:
        raise AttributeError(f"torchaudio.{attr} unavailable ({reason})")

    stub.__getattr__ = _missing  # type: ignore[attr-defined]
    sys.modules["torchaudio"] = stub
    log.debug("torchaudio unavailable, using a placeholder module (%s)", reason)


def _forget_lazy_modules() -> None:
    """Take speechbrain's not-yet-imported lazy modules out of ``sys.modules``.

    They import on first attribute access, and some fail to (k2, optional extras): anything that
    walks ``sys.modules`` (``inspect.getmodule``, hypothesis, pickle) then dies with ImportError.
    The packages keep their attributes, so speechbrain itself still finds them.
    """
    for name, mod in list(sys.modules.items()):
        if type(mod).__name__ in ("LazyModule", "DeprecatedModuleRedirect") and getattr(mod, "lazy_module", 1) is None:
            del sys.modules[name]


class EcapaVoiceprint:
    """ECAPA-TDNN speaker embeddings (192-d) on CPU with one thread."""

    name = "ecapa-voxceleb"

    def __init__(self, model_dir: str | Path, threads: int = 1) -> None:
        model_dir = Path(model_dir)
        ckpt = model_dir / "embedding_model.ckpt"
        if not (ckpt.is_file() and (model_dir / "hyperparams.yaml").is_file()):
            raise ModelMissingError(f"ECAPA model not found in {model_dir}: run scripts/install.sh")
        _stub_broken_torchaudio()
        import torch
        from hyperpyyaml import load_hyperpyyaml

        # One thread: ECAPA with 2 OpenMP threads is ~10x slower when other stages run.
        torch.set_num_threads(threads)
        self._torch = torch
        with open(model_dir / "hyperparams.yaml") as f:
            hp = load_hyperpyyaml(f, overrides={"pretrained_path": str(model_dir)})
        self._features = hp["compute_features"]
        self._norm = hp["mean_var_norm"]
        self._model = hp["embedding_model"]
        self._model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        self._model.eval()
        _forget_lazy_modules()

    @classmethod
    def from_settings(cls, settings: "Settings") -> "EcapaVoiceprint":
        return cls(settings.models_dir / ECAPA_DIR)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """float32 mono 16 kHz audio -> L2-normalised 192-d embedding."""
        a = np.asarray(audio, dtype=np.float32).ravel()
        if a.size < SAMPLE_RATE // 10 or not np.isfinite(a).all():
            raise AudioError("audio too short or invalid for a voiceprint", ErrorCode.AUDIO_EMPTY)
        torch = self._torch
        with _lock, torch.inference_mode():
            wav = torch.from_numpy(a)[None]
            lens = torch.ones(1)
            feats = self._norm(self._features(wav), lens)
            emb = self._model(feats, lens)
        return _unit(emb.numpy())
