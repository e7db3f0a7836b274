"""Sequences in and out: intrinsics YAML, frames from a video or folder, TUM trajectories, ATE."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from tools.common.errors import ErrorCode, MMChatError
from tools.vision.images import read_video

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff"}


class SequenceError(MMChatError):
    """Unreadable sequence, intrinsics or trajectory (the CLI turns it into a one-line error)."""

    code = ErrorCode.SEQUENCE


def read_intrinsics(path: str | Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    """K and optional (width, height) from YAML: ``fx fy cx cy [width height]`` or ``K: 3x3``."""
    p = Path(path)
    try:
        d = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SequenceError(f"{path}: cannot read intrinsics ({type(e).__name__})") from None
    if not isinstance(d, dict):
        raise SequenceError(f"{path}: intrinsics must be a mapping with fx, fy, cx, cy")
    try:
        if "K" in d:
            K = np.asarray(d["K"], float).reshape(3, 3)
        else:
            K = np.array([[d["fx"], 0, d["cx"]], [0, d["fy"], d["cy"]], [0, 0, 1]], float)
    except (KeyError, ValueError, TypeError):
        raise SequenceError(f"{path}: intrinsics need fx, fy, cx, cy (or a 3x3 K)") from None
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise SequenceError(f"{path}: focal lengths must be positive")
    size = (int(d["width"]), int(d["height"])) if "width" in d and "height" in d else None
    return K, size


def write_intrinsics(path: Path, K: np.ndarray, size: tuple[int, int]) -> None:
    path.write_text(yaml.safe_dump({"fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]),
                                    "cy": float(K[1, 2]), "width": size[0], "height": size[1]}))


def video_frames(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, BGR) frames of a video file (the shared reader; its errors as SequenceError)."""
    try:
        _, frames = read_video(path, default_fps=30.0)
    except MMChatError as e:
        raise SequenceError(str(e)) from None
    yield from frames


def folder_frames(path: str | Path, fps: float = 30.0) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, BGR) frames of an image folder; timestamps from ``times.txt``/``rgb.txt``
    (``timestamp filename`` lines, TUM style) or index / fps."""
    d = Path(path)
    if not d.is_dir():
        raise SequenceError(f"{path}: not a directory")
    listing = next((d / n for n in ("times.txt", "rgb.txt") if (d / n).is_file()), None)
    if listing is not None:
        items = []
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                items.append((float(parts[0]), d / parts[1]))
    else:
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT)
        items = [(i / fps, p) for i, p in enumerate(files)]
    if not items:
        raise SequenceError(f"{path}: no images")
    for t, p in items:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise SequenceError(f"{p}: not a readable image")
        yield t, img


def write_tum(path: Path, stamps: list[float], poses_wc: list[np.ndarray]) -> None:
    """TUM lines ``t tx ty tz qx qy qz qw`` (camera -> world)."""
    lines = []
    for t, T in zip(stamps, poses_wc):
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        lines.append(f"{t:.6f} " + " ".join(f"{x:.6f}" for x in (*T[:3, 3], *q)))
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (N,), positions (N, 3)) of a TUM trajectory file."""
    try:
        rows = [list(map(float, ln.split()[:8])) for ln in Path(path).read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    except (OSError, ValueError) as e:
        raise SequenceError(f"{path}: not a TUM trajectory ({type(e).__name__})") from None
    if not rows or any(len(r) < 4 for r in rows):
        raise SequenceError(f"{path}: not a TUM trajectory")
    a = np.array([r[:4] for r in rows])
    return a[:, 0], a[:, 1:4]


def associate(t_est: np.ndarray, t_gt: np.ndarray, max_dt: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of estimate and ground-truth stamps closer than max_dt."""
    if len(t_est) == 0 or len(t_gt) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    j = np.clip(np.searchsorted(t_gt, t_est), 1, len(t_gt) - 1) if len(t_gt) > 1 else np.zeros(len(t_est), int)
    j = np.where(np.abs(t_gt[j - 1] - t_est) < np.abs(t_gt[j] - t_est), j - 1, j) if len(t_gt) > 1 else j
    ok = np.abs(t_gt[j] - t_est) <= max_dt
    return np.nonzero(ok)[0], j[ok]


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """s, R, t minimising ||dst - (s R src + t)|| (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    U, D, Vt = np.linalg.svd(xd.T @ xs / len(src))
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / xs.var(0).sum()) if with_scale else 1.0
    return s, R, mu_d - s * R @ mu_s


def ate(t_est: np.ndarray, p_est: np.ndarray, t_gt: np.ndarray, p_gt: np.ndarray) -> dict:
    """ATE RMSE after Sim(3) alignment, in ground-truth units, with the ground-truth path length."""
    i, j = associate(t_est, t_gt)
    if len(i) < 3:
        return {"ate_rmse": None, "path_length": None, "matched_poses": int(len(i))}
    s, R, t = umeyama(p_est[i], p_gt[j])
    err = p_gt[j] - (s * p_est[i] @ R.T + t)
    rmse = float(np.sqrt((err ** 2).sum(1).mean()))
    length = float(np.linalg.norm(np.diff(p_gt[j], axis=0), axis=1).sum())
    return {"ate_rmse": round(rmse, 5), "path_length": round(length, 4),
            "ate_percent": round(100 * rmse / length, 3) if length > 0 else None,
            "matched_poses": int(len(i)), "scale": round(s, 5)}
