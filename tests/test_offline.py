"""No network by default: the main job completes in a network namespace without interfaces
(``unshare -n``: only a loopback device, and it is down), and the server says what it binds."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import socket, sys\n"
         "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\nexcept OSError:\n    sys.exit(0)\n"
         "sys.exit('network reachable: not isolated')")


def _can_unshare() -> bool:
    exe = shutil.which("unshare")
    return exe is not None and subprocess.run([exe, "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="unshare -n needs root (CI has it)")
def test_ask_completes_with_no_network():
    script = f"{sys.executable} -c \"$PROBE\" && exec {sys.executable} main.py ask 'What can you do?' --json"
    r = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**__import__("os").environ, "PROBE": PROBE})
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["reply"].strip() and not out.get("error"), out


def test_serve_says_it_binds_this_machine_only():
    from agent.evals.server_load import ServerProcess

    with ServerProcess() as server:
        assert server.start_line.startswith("MMChat: binding 127.0.0.1:") and "this machine only" in server.start_line
