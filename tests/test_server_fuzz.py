"""The HTTP API under fuzzing and load (agent/evals/http_fuzz.py, agent/evals/server_load.py): no 5xx
except 503 (busy), the server keeps answering. Default: in-process with the run's real models, the
cases that are refused before any model call; slow: a live ``main.py serve`` on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.evals.http_fuzz import FuzzReport, garbage, schema_cases

ROOT = Path(__file__).resolve().parent.parent
UPLOADS = ["/api/turn", "/api/transcribe", "/api/perceive", "/api/ask_image", "/api/emotion/audio",
           "/api/emotion/face"]


@pytest.fixture(scope="module")
def app(settings, assistant):
    from agent.app.server import create_app

    return create_app(settings, assistant, hosts=["testserver", "localhost", "127.0.0.1"])


def test_openapi_documents_the_upload_bodies(app):
    paths = app.openapi()["paths"]
    assert "audio/wav" in paths["/api/turn"]["post"]["requestBody"]["content"]
    assert paths["/api/ask"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == ["text"]


def test_schema_fuzz_and_garbage_in_process(app):
    """Schema-breaking cases for every operation, random uploads for the upload endpoints."""
    import schemathesis
    from fastapi.testclient import TestClient

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = FuzzReport()
    schema_cases(schema, report, examples=8, modes=("negative",))
    # valid photos for ask_image would reach the LLM: that endpoint gets schema-breaking cases and garbage only
    upload_only = schema.include(path_regex="|".join(f"^{p}$" for p in UPLOADS if p != "/api/ask_image"))
    schema_cases(upload_only, report, examples=8, modes=("positive",))
    client = TestClient(app)

    def send(method, path, headers, body, params):  # noqa: ANN001, ANN202
        r = client.request(method, path, headers=headers, content=body, params=params)
        return r.status_code, r.text[:300]

    garbage(send, UPLOADS, report, n=80)
    assert report.inputs >= 150 and report.server_errors == 0, report.as_json()
    assert client.get("/api/health").status_code == 200


@pytest.mark.slow
def test_live_server_fuzz():
    """``main.py serve`` on 127.0.0.1 with the real models: schema cases (valid and breaking) and garbage."""
    from agent.evals.http_fuzz import fuzz_url
    from agent.evals.server_load import ServerProcess

    with ServerProcess() as server:
        assert "127.0.0.1" in server.start_line and "this machine only" in server.start_line
        before = server.stats()
        report = fuzz_url(server.url, examples=6, garbage_n=200)
        after = server.stats()
        assert server.alive() and report.server_errors == 0, report.as_json()
        assert report.inputs >= 300
        assert after["threads"] <= before["threads"] + 40  # the thread pool, not one thread per request


@pytest.mark.slow
def test_eight_clients_for_a_minute(settings):
    """Turns, photos, questions and garbage from 8 clients: every request answered or refused with 503
    in time, the server alive and healthy afterwards."""
    from agent.evals.server_load import ServerProcess, load, warm_up

    with ServerProcess() as server:
        warm_up(server, settings)
        out = load(server, settings, clients=8, seconds=60)
    summary = out["server_load_all"]
    assert summary["requests"] >= 16 and summary["failed"] == 0, summary
    assert summary["healthy_after"], summary
    assert set(summary["by_status"]) <= {"200", "400", "415", "503"}, summary
