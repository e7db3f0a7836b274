"""Build the compressed model variants from the cached models (install time; idempotent).

Runs after scripts/fetch_models.py and the converters; reads only what they cached and
../shared/testdata (calibration frames), downloads nothing. Each artefact is written to a
temporary name, checked, then renamed, so an interrupted run leaves no half file; a finished
one is skipped next time.

- LLM: llama.cpp's own quantiser (``llama_cpp.llama_model_quantize``, in the installed wheel)
  re-quantises the shipped Q4_K GGUF to smaller types (``--allow-requantize``: there is no f16
  source in any registry, so these can only lose accuracy; the table says how much).
- NanoDet, FER emotion: onnxruntime int8, dynamic (weights only) and static (QDQ, activations
  calibrated on real frames of the shared test data).
- ECAPA: the embedding network exported to ONNX (the filterbank stays in torch), plus its
  onnxruntime dynamic int8.
- MiniLM: the sentence encoder exported to ONNX, plus its onnxruntime dynamic int8.

Usage: .venv/bin/python scripts/quantise_models.py [--cache ~/.cache/mmchat] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.common.models import ECAPA_DIR, ECAPA_NETWORKS, LLM_FILES, LLM_QUANTS, MINILM_DIR, MINILM_FILES  # noqa: E402
from agent.evals.compression_data import CALIB_FRAMES, face_crops, street_frames  # noqa: E402
from tools.vision.emotion import FER_ONNX, FerEmotion  # noqa: E402

TESTDATA = Path(os.environ.get("MMCHAT_TESTDATA", ROOT / "../shared/testdata")).resolve()


def _log(msg: str) -> None:
    print(f"[models] {msg}", file=sys.stderr, flush=True)


def _atomic(dst: Path, build: Callable[[Path], None]) -> bool:
    """Build ``dst`` via a temporary file; False (skipped) when it already exists."""
    if dst.exists():
        return False
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    build(tmp)
    tmp.rename(dst)
    _log(f"built {dst.name} ({dst.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.0f} s)")
    return True


# --- LLM -------------------------------------------------------------------------------------

def quantise_gguf(src: Path, dst: Path, ftype_name: str, threads: int = 2) -> None:
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = True
    log = dst.with_suffix(".quantise.log")  # llama.cpp prints a line per tensor: kept out of the install log
    with open(log, "wb") as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
    if rc != 0 or not dst.is_file():
        raise SystemExit(f"quantise_models: llama_model_quantize {src.name} -> {ftype_name} failed ({rc}); see {log}")
    log.unlink()


def build_llm(models: Path, name: str) -> None:
    base, ftype = LLM_QUANTS[name]
    src = models / LLM_FILES[base]
    if not src.is_file():
        raise SystemExit(f"quantise_models: {src} missing (run scripts/fetch_models.py)")
    _atomic(models / LLM_FILES[name], lambda tmp: quantise_gguf(src, tmp, ftype))


# --- onnxruntime int8 -----------------------------------------------------------------------

class _Reader:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _prepared(src: Path, dst: Path) -> Path:
    """``src`` ready for the quantiser: Constant nodes as initializers (the exported FER graph keeps
    its weights in Constant nodes, which the quantiser cannot read), shapes inferred, graph optimised."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(dst))
    quant_pre_process(str(dst), str(dst), skip_symbolic_shape=True)
    return dst


def int8_dynamic(src: Path, dst: Path) -> None:
    """Weights int8, activations quantised on the fly (MatMulInteger / ConvInteger)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre = _prepared(src, dst.with_name(dst.name + ".pre.onnx"))
    try:
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)


def int8_static(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    """Weights (per channel) and activations int8, activation ranges from ``feeds`` (min/max).

    QOperator format: the QDQ format gave NanoDet no detections and FER random answers here.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    pre = _prepared(src, dst.with_name(dst.name + ".pre.onnx"))
    try:
        quantize_static(str(pre), str(dst), _Reader(feeds), quant_format=QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        pre.unlink(missing_ok=True)


def build_detector(models: Path) -> None:
    from tools.vision.detector import NanoDetONNX

    src = models / "nanodet-m-416.onnx"
    if not src.is_file():
        raise SystemExit(f"quantise_models: {src} missing (run scripts/convert_detector.py)")
    _atomic(models / "nanodet-m-416-int8dyn.onnx", lambda tmp: int8_dynamic(src, tmp))

    def static(tmp: Path) -> None:
        det = NanoDetONNX(src)
        feeds = [{det.input_name: det.inputs(f)} for f in street_frames(TESTDATA, CALIB_FRAMES)]
        int8_static(src, tmp, feeds)

    _atomic(models / "nanodet-m-416-int8.onnx", static)


def build_emotion(models: Path) -> None:
    src = models.joinpath(*FER_ONNX)
    if not src.is_file():
        raise SystemExit(f"quantise_models: {src} missing (run scripts/convert_emotion_model.py)")
    _atomic(src.with_name("mini_xception-int8dyn.onnx"), lambda tmp: int8_dynamic(src, tmp))

    def static(tmp: Path) -> None:
        crops = [c for _, c in face_crops(TESTDATA, "calibration")]
        int8_static(src, tmp, [{"face": FerEmotion.inputs([c])} for c in crops])

    _atomic(src.with_name("mini_xception-int8.onnx"), static)


# --- torch models exported to ONNX ------------------------------------------------------------

def _export(module, args: tuple, dst: Path, names: list[str], out: str, axes: dict) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter is what we want
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    with torch.no_grad():
        torch.onnx.export(module, args, str(dst), input_names=names, output_names=[out], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def _same(want: np.ndarray, got: np.ndarray, what: str) -> None:
    a, b = want.ravel(), got.ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    if cos < 0.9999:
        raise SystemExit(f"quantise_models: the ONNX {what} differs from torch (cosine {cos:.5f})")


def build_ecapa(models: Path) -> None:
    """ECAPA's embedding network (filterbank features in, 192-d out) as ONNX, fp32 and dynamic int8."""
    import onnxruntime as ort
    import torch

    from agent.common.audio_io import load_audio
    from agent.identity.voiceprint import EcapaVoiceprint

    folder = models / ECAPA_DIR
    onnx = folder / ECAPA_NETWORKS["onnx"]

    def export(tmp: Path) -> None:
        vp = EcapaVoiceprint(folder)
        speech = sorted((TESTDATA / "speech").glob("*.wav"))
        feats = [vp.features(load_audio(p)).clone() for p in speech[:2]]  # clone: out of inference mode

        class Net(torch.nn.Module):
            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.model(x)

        _export(Net(vp.network).eval(), (feats[0],), tmp, ["feats"], "embedding", {"feats": {1: "frames"}})
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(None, {"feats": feats[1].numpy()})
        with torch.no_grad():
            _same(vp.network(feats[1]).numpy(), got[0], "ECAPA")

    _atomic(onnx, export)
    _atomic(folder / ECAPA_NETWORKS["onnx-int8dyn"], lambda tmp: int8_dynamic(onnx, tmp))


def build_minilm(models: Path) -> None:
    """The router's MiniLM encoder (token ids in, token embeddings out) as ONNX, fp32 and dynamic int8."""
    import onnxruntime as ort
    import torch

    from agent.think.sentence_encoders import load_sentence_model

    folder = models / MINILM_DIR
    folder.mkdir(exist_ok=True)
    onnx = folder / MINILM_FILES["onnx"]

    def export(tmp: Path) -> None:
        st = load_sentence_model()
        bert = st[0].auto_model.eval()
        enc = st.tokenizer(["What do you see right now?", "Tell me a joke about cats, please."],
                           padding=True, return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]

        class Net(torch.nn.Module):
            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
                return self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

        args = tuple(enc[n] for n in names)
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        _export(Net(bert).eval(), args, tmp, names, "tokens", axes)
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
            None, {n: enc[n].numpy() for n in names})
        with torch.no_grad():
            _same(bert(**enc).last_hidden_state.numpy(), got[0], "MiniLM")

    _atomic(onnx, export)
    _atomic(folder / MINILM_FILES["onnx-int8dyn"], lambda tmp: int8_dynamic(onnx, tmp))


BUILDERS: dict[str, Callable[[Path], None]] = {
    **{name: (lambda models, n=name: build_llm(models, n)) for name in LLM_QUANTS},
    "nanodet": build_detector,
    "fer-emotion": build_emotion,
    "ecapa": build_ecapa,
    "minilm": build_minilm,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    ap.add_argument("--only", nargs="*", choices=sorted(BUILDERS), help="artefacts to build (default: all)")
    a = ap.parse_args()
    models = a.cache / "models"
    for name, build in BUILDERS.items():
        if not a.only or name in a.only:
            build(models)


if __name__ == "__main__":
    main()
