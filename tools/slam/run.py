"""Run the SLAM over a whole sequence and evaluate it against a ground-truth trajectory."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from tools.common.settings import SlamSettings
from tools.slam.io import associate, ate, read_tum, umeyama, write_tum
from tools.slam.map import camera_center, invert
from tools.slam.system import FrameResult, MonocularSlam


@dataclass
class SequenceRun:
    slam: MonocularSlam
    results: list[FrameResult]
    seconds: float

    def summary(self) -> dict:
        m = self.slam.map
        track = [r.timings.get("track", 0.0) for r in self.results]
        last = self.results[-1] if self.results else None
        return {"frames": len(self.results), "keyframes": len(m.keyframes), "map_points": len(m.points),
                "initialised": m.initialised, "status_counts": m.status_counts(),
                "final_status": last.status.value if last else None, "final_message": last.message if last else "",
                "fps": round(len(self.results) / self.seconds, 2) if self.seconds > 0 else None,
                "track_ms_median": round(float(np.median(track)), 2) if track else None,
                "path_length_map": round(m.path_length(), 4)}

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, camera centres) of the frames that have a pose."""
        e = [(x.timestamp, camera_center(x.T_cw)) for x in self.slam.map.trajectory if x.T_cw is not None]
        return np.array([t for t, _ in e]), np.array([c for _, c in e]).reshape(-1, 3)

    def write_trajectory(self, path: Path) -> Path:
        tr = [(x.timestamp, x.T_cw) for x in self.slam.map.trajectory if x.T_cw is not None]
        write_tum(path, [t for t, _ in tr], [invert(T) for _, T in tr])
        return path

    def evaluate(self, gt_path: str | Path) -> tuple[dict, np.ndarray | None]:
        """ATE after Sim(3) alignment, and the ground truth mapped into map coordinates (for drawing)."""
        t_gt, p_gt = read_tum(gt_path)
        t_est, p_est = self.estimate()
        stats = ate(t_est, p_est, t_gt, p_gt)
        i, j = associate(t_est, t_gt)
        if stats["ate_rmse"] is None or stats.get("scale", 0) <= 0:
            return stats, None
        s, R, t = umeyama(p_est[i], p_gt[j])
        return stats, ((p_gt - t) @ R) / s


def fit_width(frame: np.ndarray, K: np.ndarray, max_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Downscale frames wider than max_width, with the intrinsics scaled to match."""
    w = frame.shape[1]
    if w <= max_width:
        return frame, K
    s = max_width / w
    K2 = K.copy()
    K2[:2] *= s
    return cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), K2


def slam_for(first: np.ndarray, K: np.ndarray, cfg: SlamSettings, size: tuple[int, int] | None) -> MonocularSlam:
    """A SLAM whose K matches ``first`` after ``fit_width``; ``size`` is the image size K was given for."""
    K0 = np.asarray(K, float).copy()
    if size is not None and size[0] != first.shape[1]:  # K given for another resolution
        K0[:2] *= first.shape[1] / size[0]
    return MonocularSlam(fit_width(first, K0, cfg.max_width)[1], cfg)


def run_sequence(frames: Iterable[tuple[float, np.ndarray]], K: np.ndarray, settings: SlamSettings | None = None,
                 size: tuple[int, int] | None = None, max_frames: int | None = None) -> SequenceRun:
    """Feed every (timestamp, frame) to a new SLAM; ``size`` is the image size K was given for."""
    cfg = settings or SlamSettings()
    slam: MonocularSlam | None = None
    results: list[FrameResult] = []
    t0 = time.perf_counter()
    for t, img in frames:
        if max_frames is not None and len(results) >= max_frames:
            break
        if slam is None:
            slam = slam_for(img, K, cfg, size)
        img = fit_width(img, slam.K, cfg.max_width)[0]
        results.append(slam.process(img, t))
    if slam is None:
        slam = MonocularSlam(K, cfg)
    return SequenceRun(slam, results, time.perf_counter() - t0)
