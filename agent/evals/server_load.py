"""Load on a live ``main.py serve`` (127.0.0.1 only): concurrent clients sending turns, photos and garbage.

``ServerProcess`` starts the real server on a free local port (its start line says what it binds)
and reads its RSS and thread count from /proc. ``load`` runs ``clients`` threads for ``seconds``; each
loops over a mix of spoken turns (testdata speech), photos (testdata scenes, /api/perceive), text
questions and garbage uploads. A request passes when it is answered (2xx/4xx) or refused with 503
within ``serve.lock_wait_s`` plus the time one request can take (``service_s``); any other 5xx, a
dropped connection or a later answer fails it. Bench group ``server_load`` (``main.py bench --only
server_load``) reports p50/p90 latency per kind and the pass counts.
"""
from __future__ import annotations

import collections
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.common.config import Settings
from agent.evals.stats import figure

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("turn", "photo", "ask", "garbage")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``main.py serve`` as a child process on 127.0.0.1; ``with`` stops it."""

    def __init__(self, config: str | Path = ROOT / "config.yaml", wait_s: float | None = None,
                 start_timeout_s: float = 90.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(self.port), "--config", str(config)]
        if wait_s is not None:
            cmd += ["--wait", str(wait_s)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.start_line = (self.proc.stdout.readline() if self.proc.stdout else "").strip()
        self._wait_healthy(start_timeout_s)

    def _wait_healthy(self, timeout_s: float) -> None:
        import httpx

        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {self.start_line}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"serve did not answer within {timeout_s:g} s")

    def stats(self) -> dict[str, float]:
        """RSS (MB) and threads of the server process (Linux /proc)."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
                      if ":" in line)
        return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"])}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LoadResult:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    late: int = 0
    lock = threading.Lock()

    def record(self, kind: str, status: int, seconds: float, limit_s: float, detail: str = "") -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[status] += 1
            bad = status >= 500 and status != 503
            if seconds > limit_s:
                self.late += 1
            if (bad or seconds > limit_s) and len(self.failures) < 10:
                self.failures.append(f"{kind} -> {status} after {seconds:.1f} s {detail[:120]}")

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 and s != 503) + self.late


def _requests(settings: Settings) -> dict[str, list[tuple[str, dict, bytes, dict]]]:
    """(path, headers, body, params) per kind, from the shared test data."""
    speech = sorted((settings.testdata_dir / "speech").glob("*.wav"))
    scenes = [settings.testdata_dir / "scenes" / n for n in ("messi5.jpg", "fruits.jpg")]
    wav, jpg = {"Content-Type": "audio/wav"}, {"Content-Type": "image/jpeg"}
    rng = random.Random(0)
    return {
        "turn": [("/api/turn", wav, p.read_bytes(), {}) for p in speech],
        "photo": [("/api/perceive", jpg, p.read_bytes(), {}) for p in scenes],
        "ask": [("/api/ask", {"Content-Type": "application/json"}, f'{{"text": "{q}"}}'.encode(), {})
                for q in ("What time is it?", "Tell me a short joke.", "What can you do?")],
        "garbage": [(path, {"Content-Type": kind}, rng.randbytes(rng.choice([0, 13, 2048])), {})
                    for path, kind in (("/api/turn", "audio/wav"), ("/api/perceive", "image/png"),
                                       ("/api/ask", "application/json"), ("/api/transcribe", "audio/webm"),
                                       ("/api/ask", "text/plain"))],
    }


def load(server: ServerProcess, settings: Settings, clients: int = 8, seconds: float = 120.0,
         service_s: float = 90.0, seed: int = 0) -> dict[str, Any]:
    """``clients`` threads for ``seconds``; returns figures per kind, status counts and the server's health."""
    import httpx

    wait_s = settings.serve.lock_wait_s
    limit_s = wait_s + service_s
    pool = _requests(settings)
    result = LoadResult()
    before = server.stats()
    t_end = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(seed + i)
        with httpx.Client(base_url=server.url, timeout=limit_s + 30) as http:
            while time.monotonic() < t_end:
                kind = rng.choice(KINDS)
                path, headers, body, params = rng.choice(pool[kind])
                t0 = time.perf_counter()
                try:
                    r = http.post(path, headers=headers, content=body, params=params)
                    status, detail = r.status_code, r.text[:200] if r.status_code >= 500 else ""
                except httpx.HTTPError as e:
                    status, detail = 599, f"{type(e).__name__}: {e}"
                result.record(kind, status, time.perf_counter() - t0, limit_s, detail)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = server.stats() if server.alive() else {}
    healthy = server.alive() and httpx.get(f"{server.url}/api/health", timeout=10).status_code == 200
    out: dict[str, Any] = {f"server_load_{k}": figure(v, "s") for k, v in sorted(result.latencies.items())}
    out["server_load_all"] = figure([x for v in result.latencies.values() for x in v], "s", **{
        "clients": clients, "seconds": round(wall, 1), "requests": result.requests, "failed": result.failed,
        "late": result.late, "by_status": {str(k): v for k, v in sorted(result.statuses.items())},
        "lock_wait_s": wait_s, "limit_s": limit_s, "failures": result.failures, "healthy_after": healthy,
        "rss_mb_before_after": [before["rss_mb"], after.get("rss_mb")],
        "threads_before_after": [before["threads"], after.get("threads")]})
    return out


def warm_up(server: ServerProcess, settings: Settings) -> None:
    """One request of each real kind, so model loading is not counted as load."""
    import httpx

    for kind in ("turn", "photo", "ask"):
        path, headers, body, params = _requests(settings)[kind][0]
        httpx.post(f"{server.url}{path}", headers=headers, content=body, params=params, timeout=600)


def bench_server_load(settings: Settings, repeat: int = 3, clients: int = 8, seconds: float = 120.0) -> dict:
    """Bench group ``server_load``: 8 clients for 2 minutes against ``main.py serve`` (``repeat`` unused)."""
    with ServerProcess(settings.root / "config.yaml") as server:
        warm_up(server, settings)
        out = load(server, settings, clients, seconds)
        out["server_load_all"]["start_line"] = server.start_line
        return out
