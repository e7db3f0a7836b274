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
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from tools.common.errors import AudioError, ErrorCode, ModelMissingError
from agent.common.models import ECAPA_DIR, ECAPA_NETWORKS
from tools.common.pcm import SAMPLE_RATE

if TYPE_CHECKING:
    from agent.common.config import Settings

log = logging.getLogger(__name__)

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
        version = importlib.metadata.version("torchaudio")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0"
    setattr(stub, "__version__", version)

    def _missing(attr: str) -> None:
        raise AttributeError(f"torchaudio.{attr} unavailable ({reason})")

    setattr(stub, "__getattr__", _missing)
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
    """ECAPA-TDNN speaker embeddings (192-d) on CPU with one thread.

    ``network`` (``identity.voiceprint_model``): ``torch`` runs speechbrain's embedding network;
    ``onnx`` / ``onnx-int8dyn`` run its ONNX export (fp32, dynamic int8) built at install time by
    scripts/quantise_models.py. The filterbank features are speechbrain's in every case.
    """

    name = "ecapa-voxceleb"

    def __init__(self, model_dir: str | Path, threads: int = 1, network: str = "torch") -> None:
        model_dir = Path(model_dir)
        weights = model_dir / ECAPA_NETWORKS.get(network, "?")
        if not (weights.is_file() and (model_dir / "hyperparams.yaml").is_file()):
            raise ModelMissingError(f"ECAPA model '{network}' not found in {model_dir}: run scripts/install.sh")
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
        self.network: Callable[[Any], Any]
        if network == "torch":
            model = hp["embedding_model"]
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            self.network = model.eval()
        else:
            self.network = _onnx_network(weights, threads)
        del hp
        _forget_lazy_modules()

    @classmethod
    def from_settings(cls, settings: "Settings") -> "EcapaVoiceprint":
        return cls(settings.models_dir / ECAPA_DIR, network=settings.identity.voiceprint_model)

    def features(self, audio: np.ndarray) -> Any:
        """float32 mono 16 kHz audio -> the network's input: normalised filterbanks, (1, frames, 80)."""
        torch = self._torch
        with torch.inference_mode():
            wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
            return self._norm(self._features(wav), torch.ones(1))

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """float32 mono 16 kHz audio -> L2-normalised 192-d embedding."""
        a = np.asarray(audio, dtype=np.float32).ravel()
        if a.size < SAMPLE_RATE // 10 or not np.isfinite(a).all():
            raise AudioError("audio too short or invalid for a voiceprint", ErrorCode.AUDIO_EMPTY)
        with _lock, self._torch.inference_mode():
            emb = self.network(self.features(a))
        return _unit(np.asarray(emb))


def _onnx_network(path: Path, threads: int) -> Callable[[Any], np.ndarray]:
    """An onnxruntime session as a function of the feature tensor."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda feats: session.run(None, {"feats": feats.numpy()})[0]
