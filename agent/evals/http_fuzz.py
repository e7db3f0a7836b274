"""Fuzzing the HTTP API: schemathesis cases from the server's own OpenAPI schema, then raw garbage.

* ``schema_cases``: every operation of ``/openapi.json`` (request bodies from agent/app/server_openapi.py),
  positive (schema-valid) and/or negative (schema-breaking) cases, ``examples`` per operation and mode.
* ``garbage``: every POST path with random bytes or JSON under every accepted content type (and some
  that are refused), and random query strings.

A response passes when it is not a 5xx, except 503 (busy: the models' lock wait ran out). Run against
the app in-process (``from_asgi``) or a live ``main.py serve`` (``base_url``).
Run: ``python -m agent.evals.http_fuzz --url http://127.0.0.1:8765 [--examples 20] [--modes positive,negative]``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

CONTENT_TYPES = ("application/json", "audio/wav", "audio/webm", "image/jpeg", "image/png", "application/octet-stream",
                 "text/plain", "multipart/form-data; boundary=x", "")


@dataclass
class FuzzReport:
    inputs: int = 0
    by_status: collections.Counter = field(default_factory=collections.Counter)
    per_operation: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)  # the first few server errors, one line each
    unsatisfiable: list[str] = field(default_factory=list)  # operation/mode pairs with no case to generate
    seconds: float = 0.0

    def record(self, label: str, status: int, detail: str = "") -> None:
        self.inputs += 1
        self.by_status[status] += 1
        self.per_operation[label] += 1
        if status >= 500 and status != 503 and len(self.failures) < 10:
            self.failures.append(f"{label} -> {status}: {detail[:160]}")

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.by_status.items() if s >= 500 and s != 503)

    def as_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "server_errors": self.server_errors, "seconds": round(self.seconds, 1),
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "per_operation": dict(sorted(self.per_operation.items())), "failures": self.failures,
                "unsatisfiable": self.unsatisfiable}


def schema_cases(schema: Any, report: FuzzReport, examples: int, modes: tuple[str, ...],
                 base_url: str | None = None, timeout: float = 300.0, skip: tuple[str, ...] = ()) -> None:
    """Every operation of a schemathesis schema, ``examples`` cases per mode."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in skip:
            continue
        for mode in modes:
            strategy = op.as_strategy(generation_mode=GenerationMode(mode))

            @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(strategy)
            def run(case: Any) -> None:
                kwargs = {"base_url": base_url, "timeout": timeout} if base_url else {"timeout": timeout}
                try:
                    r = case.call(**kwargs)
                except Exception as e:  # noqa: BLE001 - a dropped connection is a failure, not a crash here
                    report.record(f"{op.method.upper()} {op.path} [{mode}]", 599, f"{type(e).__name__}: {e}")
                    return
                report.record(f"{op.method.upper()} {op.path} [{mode}]", r.status_code,
                              bytes(r.content[:300]).decode("utf-8", "replace"))

            try:
                run()
            except Unsatisfiable:  # e.g. no way to break the schema of an operation without parameters
                report.unsatisfiable.append(f"{op.method.upper()} {op.path} [{mode}]")


def garbage(send: Callable[..., tuple[int, str]], paths: list[str], report: FuzzReport, n: int, seed: int = 0) -> None:
    """``n`` raw requests: random bytes/JSON/params to random POST paths under random content types."""
    rng = random.Random(seed)
    for _ in range(n):
        path = rng.choice(paths)
        kind = rng.choice(CONTENT_TYPES)
        pick = rng.random()
        if pick < 0.4:
            body = rng.randbytes(rng.choice([0, 1, 7, 44, 512, 4096, 65536]))
        elif pick < 0.6:  # a WAV/JPEG/PNG magic number with junk behind it
            body = rng.choice([b"RIFF\x24\x00\x00\x00WAVEfmt ", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n",
                               b"\x1aE\xdf\xa3", b"ID3\x03"]) + rng.randbytes(rng.randint(0, 3000))
        else:
            value = rng.choice([None, 0, -1, 1e308, "", "x" * rng.randint(0, 9000), [], {}, ["hi"], True,
                                {"text": "\x00" * 5}, {"text": rng.randbytes(20).decode("latin-1")}])
            body = json.dumps({rng.choice(["text", "emotion", "audio", "image", "x"]): value}).encode()
        params = {rng.choice(["text", "emotion", "x"]): rng.choice(["", "hi", "furious", "\x00", "é" * 300])} \
            if rng.random() < 0.5 else {}
        headers = {"Content-Type": kind} if kind else {}
        status, text = send("POST", path, headers, body, params)
        report.record(f"POST {path} [garbage]", status, text)


def http_sender(base_url: str, timeout: float = 300.0) -> Callable[..., tuple[int, str]]:
    import httpx

    client = httpx.Client(base_url=base_url, timeout=timeout)

    def send(method: str, path: str, headers: dict, body: bytes, params: dict) -> tuple[int, str]:
        try:
            r = client.request(method, path, headers=headers, content=body, params=params)
        except httpx.HTTPError as e:
            return 599, f"{type(e).__name__}: {e}"
        return r.status_code, r.text

    return send


def post_paths(openapi: dict) -> list[str]:
    return sorted(p for p, ops in openapi.get("paths", {}).items() if "post" in ops)


def fuzz_url(base_url: str, examples: int = 20, modes: tuple[str, ...] = ("positive", "negative"),
             garbage_n: int = 300, skip: tuple[str, ...] = ()) -> FuzzReport:
    """Schema cases then garbage against a live server; the report counts every input."""
    import httpx
    import schemathesis

    t0 = time.perf_counter()
    report = FuzzReport()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema_cases(schema, report, examples, modes, base_url=base_url, skip=skip)
    garbage(http_sender(base_url), post_paths(httpx.get(f"{base_url}/openapi.json").json()), report, garbage_n)
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.evals.http_fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8765")
    ap.add_argument("--examples", type=int, default=20, help="schema cases per operation and mode")
    ap.add_argument("--modes", default="positive,negative")
    ap.add_argument("--garbage", type=int, default=300, help="raw garbage requests")
    a = ap.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # hypothesis notes (seeds of unsatisfiable operations)
        report = fuzz_url(a.url, a.examples, tuple(a.modes.split(",")), a.garbage)
    json.dump(report.as_json(), sys.stdout)
    print()
    return 1 if report.server_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
