"""Warm prompt prefixes saved to disk: the second start of the assistant skips the cold prompt.

Evaluating the fixed controller prompt (system prompt, tools, few-shot turns: ~600 tokens) costs
~10 s on two cores. llama.cpp can serialise a context's KV cache; after the first warm-up the
state is written under ``<cache>/llm-state/`` keyed by everything it depends on (model file,
llama-cpp-python version, context size, the prompt text), and later starts load it in well under
a second. Later prompts reuse it through llama-cpp-python's longest-prefix match, exactly as if
the warm-up had just run. Other backends (servers keep their own caches) simply warm up.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)
MAGIC = b"MMKV1\n"


def llama_of(llm: Any) -> Any | None:
    """The llama_cpp.Llama behind a LangChain ChatLlamaCpp (or its ``.bind`` wrapper); None otherwise."""
    for obj in (llm, getattr(llm, "bound", None)):
        client = getattr(obj, "client", None)
        if client is not None and hasattr(client, "n_tokens") and hasattr(client, "_ctx"):
            return client
    return None


def state_key(llama: Any, prompt_text: str) -> str:
    import llama_cpp

    model = Path(llama.model_path)
    st = model.stat()
    parts = [str(model.resolve()), str(st.st_size), str(int(st.st_mtime)), llama_cpp.__version__,
             str(llama.n_ctx()), str(llama.n_batch), prompt_text]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def save_state(llama: Any, path: Path) -> int:
    """Write the context's KV cache and its token ids (atomically); returns bytes written."""
    import llama_cpp

    size = llama_cpp.llama_state_get_size(llama._ctx.ctx)
    buf = (ctypes.c_uint8 * int(size))()
    n = int(llama_cpp.llama_state_get_data(llama._ctx.ctx, buf, size))
    ids = np.asarray(llama.input_ids[: llama.n_tokens], np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(np.array([len(ids), n], np.int64).tobytes())
        f.write(ids.tobytes())
        f.write(memoryview(buf)[:n])
    os.replace(tmp, path)
    return n


def load_state(llama: Any, path: Path) -> bool:
    """Restore a saved KV cache into ``llama``; False (and the file removed) when it does not fit."""
    import llama_cpp

    data = path.read_bytes()
    if not data.startswith(MAGIC):
        path.unlink(missing_ok=True)
        return False
    off = len(MAGIC)
    n_ids, n = (int(v) for v in np.frombuffer(data, np.int64, 2, off))
    off += 16
    ids = np.frombuffer(data, np.int32, n_ids, off)
    off += 4 * n_ids
    if n_ids > llama.n_ctx() or len(data) - off != n:
        path.unlink(missing_ok=True)
        return False
    buf = (ctypes.c_uint8 * n).from_buffer_copy(data, off)
    if int(llama_cpp.llama_state_set_data(llama._ctx.ctx, buf, n)) != n:
        path.unlink(missing_ok=True)
        llama.reset()
        return False
    llama.input_ids[:n_ids] = ids
    llama.n_tokens = n_ids
    llama._requires_eval = True  # the first decode after a restore refreshes the logits
    return True


def warm(llm: Any, prompt_text: str, run: Callable[[], None], state_dir: Path | None) -> str:
    """Warm ``llm`` on its fixed prompt: load the saved state if there is one, else ``run`` and save it.

    Returns what happened ("loaded", "warmed" or "warmed+saved") for the start-up log.
    """
    llama = llama_of(llm) if state_dir is not None else None
    if llama is None:
        run()
        return "warmed"
    path = state_dir / f"{state_key(llama, prompt_text)}.kv"
    t0 = time.perf_counter()
    if path.exists():
        try:
            if load_state(llama, path):
                log.info("LLM prompt state loaded from %s in %.2f s", path.name, time.perf_counter() - t0)
                return "loaded"
        except (OSError, ValueError) as e:
            log.warning("saved LLM state %s unusable (%s); warming up", path.name, e)
            path.unlink(missing_ok=True)
    run()
    try:
        n = save_state(llama, path)
        log.info("LLM prompt state saved (%.1f MB)", n / 1e6)
        return "warmed+saved"
    except OSError as e:  # a full or read-only cache costs only the next start's warm-up
        log.warning("could not save the LLM state: %s", e)
        return "warmed"


class PassCounter:
    """Tokens llama.cpp evaluated in one pass (prompt and generated) and the time each took.

    ``n_prompt`` counts only the prompt tokens that missed the KV cache: the figure that says
    whether a prompt shares its prefix with the previous one. Empty for other backends.
    """

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llama = llama_of(llm)
        if self.llama is not None:
            llama_cpp.llama_perf_context_reset(self.llama._ctx.ctx)

    def read(self) -> dict[str, float]:
        if self.llama is None:
            return {}
        d = self._lib.llama_perf_context(self.llama._ctx.ctx)
        return {"prompt_tokens": float(d.n_p_eval), "prompt_eval_s": round(d.t_p_eval_ms / 1000, 4),
                "gen_tokens": float(d.n_eval), "gen_s": round(d.t_eval_ms / 1000, 4)}
