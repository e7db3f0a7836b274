"""``main.py serve``: the HTTP API answers like the CLI, with the real models; bad uploads are 4xx."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()

pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared testdata missing")


@pytest.fixture(scope="module")
def client(settings, assistant):
    from fastapi.testclient import TestClient

    from agent.app.server import create_app

    return TestClient(create_app(settings, assistant, hosts=["testserver"]))  # the run's models, loaded once


JPEG, WAV = {"Content-Type": "image/jpeg"}, {"Content-Type": "audio/wav"}


def test_page_and_health(client):
    assert "<title>MMChat</title>" in client.get("/").text
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["llm"].startswith("embedded:")


def test_perceive_an_uploaded_photo(client):
    r = client.post("/api/perceive", content=(TESTDATA / "scenes" / "messi5.jpg").read_bytes(), headers=JPEG)
    assert r.status_code == 200, r.text
    labels = {o["label"] for o in r.json()["frames"][0]["objects"]}
    assert {"person", "sports ball"} <= labels and "people" in r.json()["summary"]


def test_spoken_turn_and_reply_audio(client):
    r = client.post("/api/turn", content=(TESTDATA / "speech" / "spk1_snt4.wav").read_bytes(), headers=WAV)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "stripe" in body["transcript"].lower() and body["reply"] and body["tool_calls"] == []
    wav = client.get(body["reply_audio"])
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF" and len(wav.content) > 10000


def test_ask_with_a_photo_calls_the_scene_tool(client):
    r = client.post("/api/ask_image", params={"text": "What do you see?"},
                    content=(TESTDATA / "scenes" / "messi5.jpg").read_bytes(), headers=JPEG)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["tool_calls"]] == ["describe_scene"] and "ball" in body["reply"].lower()


@pytest.mark.parametrize("path,data", [("/api/turn", b""), ("/api/turn", b"RIFF not really a wav" * 20),
                                       ("/api/perceive", b"\x89PNG broken"), ("/api/transcribe", b""),
                                       ("/api/ask_image?text=hi", b"")])
def test_bad_uploads_are_clear_client_errors(client, path, data):
    r = client.post(path, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and r.json()["code"] in {"bad-input", "audio-invalid", "audio-empty",
                                                          "image-invalid"}, r.text
    assert "/tmp" not in r.json()["error"]  # the message names the upload, not a temporary file
    assert client.get("/api/health").status_code == 200  # the server is still up


@pytest.mark.parametrize("body", [{"text": "hi", "emotion": 5}, {"text": "hi", "emotion": "furious"}, ["hi"],
                                  {"text": "x" * 5000}])
def test_bad_json_is_a_client_error(client, body):
    r = client.post("/api/ask", json=body)
    assert r.status_code == 400 and r.json()["code"] in {"bad-input", "input-too-long"}, r.text


def test_other_sites_and_hosts_are_refused(settings, assistant):
    """A cross-site "simple" POST (text/plain, forms) and a foreign Host (DNS rebinding) never reach the models."""
    from fastapi.testclient import TestClient

    from agent.app.server import create_app

    local = TestClient(create_app(settings, assistant), base_url="http://127.0.0.1:8765")
    r = local.post("/api/turn", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert local.get("/api/health").status_code == 200
    foreign = TestClient(create_app(settings, assistant), base_url="http://attacker.example")
    assert foreign.get("/api/health").status_code == 400


def test_huge_image_is_refused_before_decoding(client):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, "PNG")  # 48 MP, a few kB compressed
    r = client.post("/api/perceive", content=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "megapixels" in r.json()["error"]


def test_ask_needs_text(client):
    r = client.post("/api/ask", json={"text": "  "})
    assert r.status_code == 400 and "text" in r.json()["error"]


def test_serve_command_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        import httpx

        for _ in range(100):
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).json()["status"] == "ok"
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not answer within 20 s")
    finally:
        proc.terminate()
        proc.wait(10)
