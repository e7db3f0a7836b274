"""Bench group ``rtc``: 1, 2 and 4 concurrent live sessions on one ``main.py serve``.

Each client is an aiortc peer (``agent.evals.rtc_probe``) in its own process, as if on its own machine
(though here on the same cores; their CPU is reported beside the server's), streaming the composed turn (Piper "Hey
Jarvis." + the enrolled user's spk1_snt4) with the shared Hamilton clip as its camera, until its
reply has been heard. Figures per client count: analysed camera frames per second (per client),
answer latency (the session's end of speech -> first reply audio), whether the clients unlocked,
the server's CPU (cores busy) and peak RSS, and that one client over ``serve.max_clients`` is refused.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from agent.common.config import Settings
from agent.evals.rtc_probe import CLIP, IN_VIEW, ProbeResult, compose, enroll_lin, probe, write_script
from agent.evals.server_load import ROOT, ServerProcess
from agent.evals.stats import figure

COUNTS = (1, 2, 4)
NO_GESTURES = {"gesture_hold_ms": 10000}


def server_config(settings: Settings, folder: Path, max_clients: int) -> Path:
    """config.yaml with absolute paths, profiles in ``folder`` (``lin`` enrolled there)."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    paths = data.setdefault("paths", {})
    for key, value in settings.paths.model_dump().items():
        paths[key] = str(settings.path(value))
    paths["profiles"] = str(folder / "profiles")
    data.setdefault("serve", {})["max_clients"] = max_clients
    out = folder / "config.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


class Sampler:
    """The server process's CPU (cores busy) and RSS, sampled every ``period_s`` while running."""

    def __init__(self, pid: int, period_s: float = 0.5) -> None:
        self.pid, self.period_s = pid, period_s
        self.rss_mb: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            status = Path(f"/proc/{self.pid}/status").read_text()
            kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
            self.rss_mb.append(kb / 1024)

    def __enter__(self) -> "Sampler":
        self.t0, self.cpu0 = time.monotonic(), self._cpu_s()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cores = (self._cpu_s() - self.cpu0) / max(1e-3, time.monotonic() - self.t0)


def _done(r: ProbeResult) -> bool:
    """The client's turn is over: answered, refused, or locked again (and its audio heard)."""
    return r.reply_s > 0.5 and any(t in r.types() for t in ("reply", "refusal", "lock"))


def _answered(r: ProbeResult) -> bool:
    """Its question got a spoken reply (a refusal or a lock is not an answer)."""
    return r.reply_s > 0.5 and r.first("reply") is not None


def _client(url: str, wav: Path, video: Path, timeout_s: float) -> ProbeResult:
    """One client's turn, run in a process of its own."""
    # gestures held off: the clip's held fist would select privacy mode and lock before the answer
    return asyncio.run(probe(url, wav, video, until=_done, timeout_s=timeout_s, settings=NO_GESTURES,
                             video_span=IN_VIEW))


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _clients(url: str, n: int, wav: Path, video: Path, timeout_s: float) -> tuple[list[ProbeResult], float]:
    """``n`` clients at once, one process each (in one process their decoding, encoding and pacing share
    one interpreter and starve each other's audio); (results, the clients' CPU in cores busy)."""
    cpu0, t0 = _children_cpu_s(), time.monotonic()
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_client, *zip(*[(url, wav, video, timeout_s)] * n)))
    return results, (_children_cpu_s() - cpu0) / max(1e-3, time.monotonic() - t0)  # reaped: counted


def _outcome(r: ProbeResult) -> str:
    """What one client's turn came to, for the figures' reader: its event path (repeats and perception
    folded) and, when it was not answered, the lock's or error's reason."""
    path: list[str] = []
    for e in r.events:
        kind = e["type"]
        if kind == "lock" and e.get("reason"):
            kind = f"lock({e['reason']})"
        elif kind == "error":
            kind = f"error({e.get('code') or e.get('stage')}: {str(e.get('message', ''))[:60]})"
        if not path or path[-1] != kind:
            path.append(kind)
    tail = "" if r.error is None else f" [{r.error}]"
    return ">".join(path) + f" (reply audio {r.reply_s:.1f} s){tail}"


def _fps(r: ProbeResult) -> float:
    return float(r.last_frame["fps"]) if r.last_frame else 0.0


def bench_rtc(settings: Settings, repeat: int = 3, counts: tuple[int, ...] = COUNTS, timeout_s: float = 150.0,
              rounds: int = 1) -> dict:
    """One round per client count (a round is one real-time turn per client, ~40 s); ``repeat`` is not
    used: on two cores more rounds cost minutes and the per-client figures already come n at a time."""
    from agent.session.assistant import Assistant

    out: dict[str, Any] = {"rtc_machine": {"cpus": os.cpu_count(), "loadavg_start": [round(v, 2) for v in os.getloadavg()]}}
    with tempfile.TemporaryDirectory(prefix="mmchat-bench-rtc-") as tmp:
        folder = Path(tmp)
        enroll_lin(settings.model_copy(update={"paths": settings.paths.model_copy(
            update={"profiles": str(folder / "profiles")})}))
        wav = write_script(compose(Assistant(settings).tts, settings), folder / "turn.wav")
        video = settings.testdata_dir.joinpath(*CLIP)
        max_clients = max(counts)
        with ServerProcess(server_config(settings, folder, max_clients), start_timeout_s=120) as server:
            warm, _ = _clients(server.url, 1, wav, video, timeout_s)  # models loaded, first turn done
            out["rtc_warm_turn"] = _outcome(warm[0])
            for n in counts:
                fps, latency, unlocked, answered, refused, outcomes, client_cpu = [], [], 0, 0, 0, [], []
                with Sampler(server.proc.pid) as cpu:
                    for _ in range(rounds):
                        results, cores = _clients(server.url, n, wav, video, timeout_s)
                        client_cpu.append(cores)
                        for r in results:
                            fps.append(_fps(r))
                            reply = r.first("reply")
                            if reply and reply.get("first_audio_s") is not None:
                                latency.append(float(reply["first_audio_s"]))
                            unlocked += "active" in r.states()
                            answered += _answered(r)
                            refused += r.first("refusal") is not None
                            outcomes.append(_outcome(r))
                out[f"rtc_clients_{n}"] = {
                    "analysed_fps_per_client": figure(fps, unit="fps"),
                    "answer_latency": figure(latency, unit="s"),
                    "unlocked": f"{unlocked}/{n * rounds}", "answered": f"{answered}/{n * rounds}",
                    "refused": f"{refused}/{n * rounds}", "outcomes": outcomes,
                    "server_cpu_cores": round(cpu.cores, 2),
                    "clients_cpu_cores": round(sum(client_cpu) / len(client_cpu), 2), "server_peak_rss_mb": round(max(cpu.rss_mb or [0]), 1)}
            out["rtc_refusal_over_limit"] = asyncio.run(_over_limit(server.url, max_clients, wav))
    out["rtc_machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return out


async def _over_limit(url: str, limit: int, wav: Path) -> str:
    """``limit`` clients connected, then one more: its offer must be refused (503) with a reason."""
    holders = [asyncio.ensure_future(probe(url, wav, None, until=lambda r: False, timeout_s=8)) for _ in range(limit)]
    await asyncio.sleep(3)
    extra = await probe(url, wav, None, until=lambda r: True, timeout_s=1)
    await asyncio.gather(*holders)
    return extra.error or "not refused"
