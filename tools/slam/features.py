"""ORB features spread over the image, Hamming matching and projection search."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from scipy.spatial import cKDTree

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances between broadcastable uint8 descriptor arrays."""
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int32)


@dataclass
class FrameFeatures:
    keypoints: np.ndarray  # (N, 2) float32 pixels
    descriptors: np.ndarray  # (N, 32) uint8
    _tree: cKDTree | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def tree(self) -> cKDTree:
        if self._tree is None:
            self._tree = cKDTree(self.keypoints if len(self.keypoints) else np.zeros((0, 2)))
        return self._tree


class FeatureExtractor(Protocol):
    def __call__(self, gray: np.ndarray) -> FrameFeatures: ...


class OrbExtractor:
    """ORB keypoints kept per grid cell so they cover the whole image."""

    def __init__(self, n_features: int = 1000, scale_factor: float = 1.2, n_levels: int = 8,
                 fast_threshold: int = 12, grid: tuple[int, int] = (8, 6)) -> None:
        self.n_features = n_features
        self.grid = grid
        self.orb = cv2.ORB_create(  # type: ignore[attr-defined]  # (missing from the stubs)
            nfeatures=2 * n_features, scaleFactor=scale_factor, nlevels=n_levels,
            fastThreshold=fast_threshold, edgeThreshold=19, patchSize=31)

    def __call__(self, gray: np.ndarray) -> FrameFeatures:
        kps = self.orb.detect(gray, None)
        kps = self._spread(kps, gray.shape)
        kps, desc = self.orb.compute(gray, kps)
        if desc is None or not kps:
            return FrameFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        return FrameFeatures(np.array([k.pt for k in kps], np.float32), desc)

    def _spread(self, kps: list, shape: tuple[int, ...]) -> list:
        if len(kps) <= self.n_features:
            return list(kps)
        gx, gy = self.grid
        h, w = shape[:2]
        per_cell = max(1, self.n_features // (gx * gy))
        cells: dict[tuple[int, int], list] = {}
        for k in kps:
            cells.setdefault((min(gx - 1, int(k.pt[0] * gx / w)), min(gy - 1, int(k.pt[1] * gy / h))), []).append(k)
        kept, rest = [], []
        for group in cells.values():
            group.sort(key=lambda k: -k.response)
            kept += group[:per_cell]
            rest += group[per_cell:]
        rest.sort(key=lambda k: -k.response)  # fill up with the strongest leftovers
        return kept + rest[: max(0, self.n_features - len(kept))]


def match_descriptors(d1: np.ndarray, d2: np.ndarray, ratio: float = 0.8, max_dist: int = 64) -> np.ndarray:
    """Mutual-best ratio-test matches as (M, 2) index pairs into d1, d2."""
    if len(d1) < 2 or len(d2) < 2:
        return np.zeros((0, 2), np.int64)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = bf.knnMatch(d1, d2, k=2)
    fwd = {}
    for m in knn:
        if len(m) == 2 and m[0].distance < ratio * m[1].distance and m[0].distance <= max_dist:
            fwd[m[0].queryIdx] = m[0].trainIdx
    back = {m.queryIdx: m.trainIdx for m in bf.match(d2, d1)}
    pairs = [(q, t) for q, t in fwd.items() if back.get(t) == q]
    return np.array(pairs, np.int64).reshape(-1, 2)


def search_by_projection(uv: np.ndarray, desc: np.ndarray, feats: FrameFeatures, radius: float,
                         max_dist: int = 64, k: int = 8) -> np.ndarray:
    """Match projected points (uv, desc) to the frame's keypoints within ``radius`` pixels.

    Returns (M, 2) pairs (projected index, keypoint index), each keypoint used once.
    """
    if len(uv) == 0 or len(feats) == 0:
        return np.zeros((0, 2), np.int64)
    k = min(k, len(feats))
    dist, idx = feats.tree.query(uv, k=k, distance_upper_bound=radius)
    dist, idx = dist.reshape(len(uv), k), idx.reshape(len(uv), k)
    valid = np.isfinite(dist)
    safe = np.where(valid, idx, 0)
    ham = hamming(desc[:, None, :], feats.descriptors[safe])
    ham = np.where(valid, ham, 10_000)
    best = ham.argmin(axis=1)
    best_d = ham[np.arange(len(uv)), best]
    cand = np.nonzero(best_d <= max_dist)[0]
    kp_idx = safe[cand, best[cand]]
    order = np.argsort(best_d[cand])  # best matches claim keypoints first
    _, first = np.unique(kp_idx[order], return_index=True)
    keep = order[first]
    return np.stack([cand[keep], kp_idx[keep]], axis=1).astype(np.int64)
