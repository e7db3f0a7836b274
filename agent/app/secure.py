"""``serve`` off this machine: TLS with a self-signed certificate and a pairing token.

Browsers give the camera and microphone only to a secure context, which a phone on the LAN reaches
through https. The certificate is made on the first start (``cryptography``) and cached under the
cache folder; the token is new at each start and printed in the terminal. Requests without the
token get 401; the page, opened once with ``?token=``, keeps it in a cookie.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

COOKIE = "mmchat_token"
CERT_DAYS = 825


def local_names() -> list[str]:
    """This machine's host name and addresses (the certificate's subject alternative names)."""
    names = {"localhost", "127.0.0.1", socket.gethostname()}
    try:
        names.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return sorted(names)


def tls_files(folder: Path, names: list[str] | None = None) -> tuple[Path, Path]:
    """(cert.pem, key.pem) under ``folder``, made once: a self-signed EC certificate for ``names``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.is_file() and key.is_file():
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names = names or local_names()
    sans: list[Any] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n.split("%")[0])))
        except ValueError:
            sans.append(x509.DNSName(n))
    pk = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MMChat (self-signed)")])
    now = dt.datetime.now(dt.timezone.utc)
    crt = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(pk.public_key())
           .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
           .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .sign(pk, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    key.chmod(0o600)
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    return cert, key


def new_token() -> str:
    return secrets.token_urlsafe(16)


def _given(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return (request.headers.get("x-mmchat-token") or request.query_params.get("token")
            or request.cookies.get(COOKIE))


def require_token(app: FastAPI, token: str) -> None:
    """Every request must carry ``token`` (bearer header, ``X-MMChat-Token``, ``?token=`` or the cookie)."""

    @app.middleware("http")
    async def paired(request: Request, call_next: Any) -> Any:
        given = _given(request)
        if given is None or not secrets.compare_digest(given, token):
            return JSONResponse({"error": "pairing token missing or wrong: open the address printed in the "
                                          "terminal where 'main.py serve' runs", "code": "unauthorized"},
                                status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):  # the page keeps it for its own later requests
            response.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="strict")
        return response
