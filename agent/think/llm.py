"""LLM backends behind one interface: LangChain chat models, chosen in config.yaml.

- ``embedded``: llama.cpp in-process (``ChatLlamaCpp``) with a GGUF from the cache.
- ``ollama``: a user's Ollama server (``ChatOllama``).
- ``openai``: any OpenAI-compatible server, e.g. llama-server or vLLM (``ChatOpenAI``).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import urlopen

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.runnables import Runnable

from agent.common.config import LLMSettings
from agent.common.models import LLM_FILES, model_path
from agent.think.llm_state import ContextRoles, RoleView
from tools.common.errors import BackendUnavailableError, ConfigError

OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"


def _reachable(url: str, timeout: float = 2.0) -> bool:
    try:
        with urlopen(url, timeout=timeout):
            return True
    except URLError as e:
        # An HTTP error status still means a server answered.
        return hasattr(e, "code")
    except (OSError, ValueError):
        return False


_OPEN: "weakref.WeakSet[Any]" = weakref.WeakSet()  # llama.cpp models still loaded


@atexit.register
def _close_models() -> None:
    """Free the loaded llama.cpp models before the interpreter tears its modules down (else their
    finaliser runs after llama_cpp's functions are gone and prints a TypeError at exit)."""
    for llama in list(_OPEN):
        with contextlib.suppress(Exception):
            llama.close()


@functools.lru_cache(maxsize=4)
def _embedded_chat(s: LLMSettings, models_dir: Path) -> Any:
    """One llama.cpp model + context per model settings, loaded once per process."""
    from langchain_community.chat_models import ChatLlamaCpp

    path = model_path(models_dir, LLM_FILES, s.model, "LLM")
    # llama.cpp prints its load log on stderr at the C level; keep the CLI clean.
    with _quiet_stderr():
        chat = ChatLlamaCpp(
            model_path=str(path), n_ctx=s.n_ctx, n_threads=s.n_threads, n_batch=s.n_batch,
            temperature=s.temperature, max_tokens=s.max_tokens, repeat_penalty=1.0,
            top_k=1 if s.temperature == 0 else 40, streaming=True, verbose=False, use_mmap=True,
        )
    _OPEN.add(chat.client)
    return chat


_ROLES: dict[int, ContextRoles] = {}  # id(llama) -> the roles sharing that context


def _roles(chat: Any) -> ContextRoles:
    return _ROLES.setdefault(id(chat.client), ContextRoles(chat.client))


@functools.lru_cache(maxsize=32)  # route, reply and one answering context per style family, per model
def make_embedded(s: LLMSettings, models_dir: Path, role: str = "route") -> Runnable:
    """The in-process model for one role; roles of the same model share one llama.cpp context.

    ``route`` keeps the long, fixed tool prompt in its KV cache; ``reply`` serves answers, and
    ``reply:<family>`` one emotion style each (persona + that style stay cached). Each role's cache
    is swapped in when it is used (agent.think.llm_state.ContextRoles), so
    neither evicts the other's prefix and the weights are mapped once.
    """
    chat = _embedded_chat(s, models_dir)
    inner: Runnable = chat
    if s.tool_bias and role == "route":
        # Nudge the first-token choice between speaking and a JSON tool call:
        # a logit bias on the token that opens '{"name": ...}'.
        opener = chat.client.tokenize(b'{"', add_bos=False, special=False)
        if len(opener) == 1:
            inner = chat.bind(logit_bias={opener[0]: s.tool_bias})
    return RoleView(inner, _roles(chat), role)


def make_ollama(s: LLMSettings) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    url = s.url or os.environ.get("OLLAMA_HOST") or OLLAMA_DEFAULT_URL
    if not url.startswith("http"):
        url = "http://" + url
    if not _reachable(url.rstrip("/") + "/api/version"):
        raise BackendUnavailableError(f"no Ollama server at {url}; start it with: ollama serve")
    return ChatOllama(model=s.model, base_url=url, temperature=s.temperature,
                      num_predict=s.max_tokens, num_ctx=s.n_ctx, keep_alive="30m")


def make_openai(s: LLMSettings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    if not s.url:
        raise ConfigError("config: llm.url: required for backend openai (e.g. http://host:8000/v1)")
    base = s.url.rstrip("/")
    if not urlparse(base).scheme:
        raise ConfigError(f"config: llm.url: not a URL: {s.url}")
    if not _reachable(base + "/models"):
        raise BackendUnavailableError(f"no OpenAI-compatible server at {base} (is it running?)")
    return ChatOpenAI(base_url=base, api_key=s.api_key or os.environ.get("OPENAI_API_KEY") or "none",
                      model=s.model, temperature=s.temperature, max_tokens=s.max_tokens,
                      timeout=s.timeout_s, max_retries=1, streaming=True)


def make_chat_model(s: LLMSettings, models_dir: Path, role: str = "route") -> Runnable:
    """Build the configured backend; a clear error when it cannot be reached.

    ``role`` ("route" or "reply") matters only in-process, where each role gets
    its own context; servers keep their own prompt caches.
    """
    if s.backend == "embedded":
        return make_embedded(s, models_dir, role)
    if s.backend == "ollama":
        return make_ollama(s)
    return make_openai(s)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (fd 2) for noisy native loaders."""
    try:
        fd = os.dup(2)
    except (OSError, io.UnsupportedOperation):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)
        os.close(devnull)
