"""Where the cached models live; a clear error when set-up has not fetched one."""
from __future__ import annotations

from pathlib import Path

from tools.common.errors import ModelMissingError

LLM_FILES = {
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k.gguf",
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}
# Re-quantised at install time by scripts/quantise_models.py (llama.cpp's quantiser): name -> (source, type)
LLM_QUANTS = {
    "qwen2.5-coder-1.5b-q4_0": ("qwen2.5-coder-1.5b", "Q4_0"),
    "qwen2.5-coder-1.5b-q3_k_m": ("qwen2.5-coder-1.5b", "Q3_K_M"),
    "qwen2.5-coder-1.5b-q2_k": ("qwen2.5-coder-1.5b", "Q2_K"),
}
LLM_FILES.update({name: f"qwen2.5-coder-1.5b-instruct-{kind.lower()}.gguf" for name, (_, kind) in LLM_QUANTS.items()})
WHISPER_DIRS = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}
PIPER_VOICES = {"en_US-joe-medium": "piper/en_US-joe-medium.onnx"}
ECAPA_DIR = "ecapa-voxceleb"
# identity.voiceprint_model -> file in ECAPA_DIR (the ONNX ones built by scripts/quantise_models.py)
ECAPA_NETWORKS = {"torch": "embedding_model.ckpt", "onnx": "embedding.onnx", "onnx-int8dyn": "embedding-int8dyn.onnx"}
MINILM_DIR = "minilm"  # controller.router_model onnx variants (scripts/quantise_models.py)
MINILM_FILES = {"onnx": "minilm.onnx", "onnx-int8dyn": "minilm-int8dyn.onnx"}

_HINT = "run the set-up (make run, or scripts/install.sh) to fetch it"


def model_path(models_dir: Path, table: dict[str, str], name: str, kind: str) -> Path:
    """Resolve a model name (or a direct path) to an existing file or folder."""
    direct = Path(name).expanduser()
    if direct.suffix and direct.exists():
        return direct
    if name not in table:
        raise ModelMissingError(f"unknown {kind} '{name}' (known: {', '.join(sorted(table))})")
    p = models_dir / table[name]
    if not p.exists():
        raise ModelMissingError(f"{kind} '{name}' is not installed at {p}; {_HINT}")
    return p
