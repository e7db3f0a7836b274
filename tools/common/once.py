"""``process_wide``: one instance per distinct arguments for the whole process (loaded models).

Like ``functools.cache``, but built under a lock, so two threads asking at once (two live sessions, the
server and a session) load a model once, and keyed by the bound arguments with their defaults, so
``f(cfg)`` and ``f(cfg, 1.0)`` are the same call. Arguments must be hashable (frozen settings are).
"""
from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def process_wide(fn: F) -> F:
    """Memoise ``fn`` for the process; ``fn.cache_clear()`` forgets the instances (tests)."""
    signature = inspect.signature(fn)
    cache: dict[tuple, Any] = {}
    lock = threading.Lock()

    @functools.wraps(fn)
    def get(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = tuple(bound.arguments.items())
        with lock:
            if key not in cache:
                cache[key] = fn(*args, **kwargs)
            return cache[key]

    get.cache_clear = cache.clear  # type: ignore[attr-defined]
    return get  # type: ignore[return-value]
