"""``serve`` off this machine: a self-signed certificate made once and cached, a pairing token on every
request (401 without it), and turns from the network answered only for an unlocked live session."""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from tests.rtc_helpers import ThreadServer


class _NoModels:
    """The server's assistant for tests that must never reach a model."""

    tool_context = None

    def __getattr__(self, name: str):
        raise AssertionError(f"a model was used: {name}")


def test_certificate_is_made_once_and_names_this_machine(tmp_path):
    from cryptography import x509

    from agent.app.secure import tls_files

    cert, key = tls_files(tmp_path / "tls", ["localhost", "127.0.0.1", "mmchat.local"])
    first = cert.read_bytes()
    assert tls_files(tmp_path / "tls") == (cert, key) and cert.read_bytes() == first  # cached
    assert key.stat().st_mode & 0o077 == 0
    c = x509.load_pem_x509_certificate(first)
    sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mmchat.local" in sans.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


@pytest.fixture
def paired(settings):
    from agent.app.server import create_app
    from tools import ToolContext

    fake = _NoModels()
    fake.tool_context = ToolContext()
    return TestClient(create_app(settings, assistant=fake, hosts=["*"], token="s3cret-token"))


def test_requests_without_the_token_get_401(paired):
    for path in ("/", "/live", "/api/health", "/api/settings", "/api/rtc/clients"):
        r = paired.get(path)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized", path
    assert paired.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert paired.post("/api/rtc/offer", json={"sdp": "v=0", "type": "offer"}).status_code == 401
    assert paired.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert paired.get("/api/health", headers={"X-MMChat-Token": "s3cret-token"}).status_code == 200


def test_the_page_keeps_the_token_in_a_cookie(paired):
    r = paired.get("/live?token=s3cret-token")
    assert r.status_code == 200 and "MMChat live" in r.text
    cookie = r.headers["set-cookie"]
    assert "mmchat_token=s3cret-token" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    assert paired.get("/api/settings", headers={"Cookie": "mmchat_token=s3cret-token"}).status_code == 200


def test_remote_turns_need_an_unlocked_live_session(paired):
    """A typed or uploaded turn from the network is gated like a spoken one: refused (403, locked)
    unless it names a live session that voice and face have unlocked -- before any model runs."""
    auth = {"Authorization": "Bearer s3cret-token"}
    for path, body in (("/api/ask", {"json": {"text": "open the door"}}),
                       ("/api/ask_image?text=hi", {"content": b"x", "headers": {"Content-Type": "image/png"}}),
                       ("/api/turn", {"content": b"RIFF", "headers": {"Content-Type": "audio/wav"}})):
        headers = {**auth, **body.pop("headers", {})}
        r = paired.post(path, headers=headers, **body)
        assert r.status_code == 403 and r.json()["code"] == "locked", path
        r = paired.post(path + ("&" if "?" in path else "?") + "client=nosuch", headers=headers, **body)
        assert r.status_code == 403, path


def test_localhost_needs_no_token(settings):
    from agent.app.server import create_app

    client = TestClient(create_app(settings, assistant=_NoModels()), base_url="http://127.0.0.1")
    assert client.get("/api/health").status_code == 200
    assert "MMChat live" in client.get("/live").text


def test_tls_server_answers_over_https_only_with_the_token(settings, tmp_path):
    from agent.app.secure import tls_files
    from agent.app.server import create_app

    cert, key = tls_files(tmp_path / "tls", ["127.0.0.1", "localhost"])
    app = create_app(settings, assistant=_NoModels(), hosts=["*"], token="tok")
    ctx = ssl.create_default_context(cafile=str(cert))
    with ThreadServer(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server.url}/api/health", context=ctx, timeout=10)
        assert e.value.code == 401
        with urllib.request.urlopen(f"{server.url}/api/health?token=tok", context=ctx, timeout=10) as r:
            assert r.status == 200
