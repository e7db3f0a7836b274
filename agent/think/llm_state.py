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
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

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


def snapshot(llama: Any) -> tuple[np.ndarray, bytes]:
    """The context's token ids and its serialised KV cache (only the cells in use)."""
    import llama_cpp

    size = llama_cpp.llama_state_get_size(llama._ctx.ctx)
    buf = (ctypes.c_uint8 * int(size))()
    n = int(llama_cpp.llama_state_get_data(llama._ctx.ctx, buf, size))
    return np.array(llama.input_ids[: llama.n_tokens], np.int32), bytes(memoryview(buf)[:n])


def restore(llama: Any, ids: np.ndarray, data: bytes) -> bool:
    """Put a snapshot back; False (context reset) when it does not fit this context."""
    import llama_cpp

    if len(ids) > llama.n_ctx():
        return False
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if int(llama_cpp.llama_state_set_data(llama._ctx.ctx, buf, len(data))) != len(data):
        llama.reset()
        return False
    llama.input_ids[: len(ids)] = ids
    llama.n_tokens = len(ids)
    llama._requires_eval = True  # the first decode after a restore refreshes the logits
    return True


def save_state(llama: Any, path: Path) -> int:
    """Write the context's KV cache and its token ids (atomically); returns bytes written."""
    ids, data = snapshot(llama)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(np.array([len(ids), len(data)], np.int64).tobytes())
        f.write(ids.tobytes())
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def load_state(llama: Any, path: Path) -> bool:
    """Restore a saved KV cache into ``llama``; False (and the file removed) when it does not fit."""
    data = path.read_bytes()
    ok = data.startswith(MAGIC)
    if ok:
        off = len(MAGIC)
        n_ids, n = (int(v) for v in np.frombuffer(data, np.int64, 2, off))
        off += 16
        ids = np.frombuffer(data, np.int32, n_ids, off)
        off += 4 * n_ids
        ok = len(data) - off == n and restore(llama, ids, data[off:])
    if not ok:
        path.unlink(missing_ok=True)
    return ok


class ContextRoles:
    """Two roles (tool routing, styled answers) taking turns on one llama.cpp context.

    A second context would map the whole model again (~1.9 GB of RSS for the 1.5B); instead the
    inactive role's KV cache is kept as a snapshot (tens of MB) and swapped back in when it is used
    (a memory copy, milliseconds), so each role still finds its own prompt prefix cached.
    """

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.active: str | None = None
        self.saved: dict[str, tuple[np.ndarray, bytes]] = {}
        self.lock = threading.Lock()

    def switch(self, role: str) -> None:
        with self.lock:
            if self.active == role:
                return
            if self.active is not None:
                self.saved[self.active] = snapshot(self.llama)
            state = self.saved.pop(role, None)
            if state is None or not restore(self.llama, *state):
                self.llama.reset()
            self.active = role


class RoleView:
    """One role's view of a shared context: its own KV cache is swapped in before every call."""

    def __init__(self, inner: Any, roles: ContextRoles, role: str) -> None:
        self.inner, self.roles, self.role = inner, roles, role
        self.client = roles.llama  # what llama_of finds

    def activate(self) -> None:
        self.roles.switch(self.role)

    def stream(self, messages: Any, **kwargs: Any) -> Iterator[Any]:
        self.activate()
        yield from self.inner.stream(messages, **kwargs)

    def invoke(self, messages: Any, **kwargs: Any) -> Any:
        self.activate()
        return self.inner.invoke(messages, **kwargs)


def warm(llm: Any, prompt_text: str, run: Callable[[], None], state_dir: Path | None) -> str:
    """Warm ``llm`` on its fixed prompt: load the saved state if there is one, else ``run`` and save it.

    Returns what happened ("loaded", "warmed" or "warmed+saved") for the start-up log.
    """
    activate = getattr(llm, "activate", None)
    if activate is not None:  # a shared context: this role's KV cache is the one to warm
        activate()
    llama = llama_of(llm) if state_dir is not None else None
    if llama is None or state_dir is None:
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
