"""Two-view initialisation: essential matrix, recoverPose, triangulation and a parallax check."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from tools.slam.features import FrameFeatures, match_descriptors


@dataclass
class InitResult:
    R: np.ndarray  # reference camera -> current camera
    t: np.ndarray  # unit-free; points are scaled so their median depth is 1
    pairs: np.ndarray  # (N, 2) keypoint indices (reference, current) of the triangulated points
    points: np.ndarray  # (N, 3) in the reference camera frame
    parallax_deg: float


class DegenerateGeometry(Exception):
    """OpenCV refused the geometry of a frame (pure rotation, collinear points, too few points)."""


@contextmanager
def cv_guard(what: str) -> Iterator[None]:
    """Turn a ``cv2.error`` inside an OpenCV geometry call into :class:`DegenerateGeometry`.

    Releases differ in what they accept: 5.1 asserts inside ``solvePoly`` on pure rotation where
    5.0 returned a matrix. Either way it is a status for that frame, never an exception out of SLAM.
    """
    try:
        yield
    except cv2.error as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DegenerateGeometry(f"degenerate geometry in {what} ({first[:80]})") from e


MIN_POINTS = 8  # fewer correspondences cannot give a stable essential matrix


def triangulate(K: np.ndarray, T1: np.ndarray, T2: np.ndarray, uv1: np.ndarray,
                uv2: np.ndarray) -> np.ndarray:
    """Linear triangulation of pixel pairs seen from world->camera poses T1, T2; (N, 3) world points."""
    if len(uv1) == 0:
        return np.zeros((0, 3))
    with cv_guard("triangulation"):
        X = cv2.triangulatePoints(K @ T1[:3], K @ T2[:3], uv1.T.astype(float), uv2.T.astype(float))
    w = np.where(np.abs(X[3]) < 1e-12, 1e-12, X[3])
    return (X[:3] / w).T


def reprojection_error(K: np.ndarray, T: np.ndarray, P: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixel error, depth) of world points P in a camera with pose T."""
    Xc = P @ T[:3, :3].T + T[:3, 3]
    z = Xc[:, 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    proj = (Xc[:, :2] / zs[:, None]) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    return np.linalg.norm(proj - uv, axis=1), z


def parallax_deg(C1: np.ndarray, C2: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Angle at each point between the rays to the two camera centres."""
    a, b = P - C1, P - C2
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


class TwoViewInitializer:
    """Accepts a pair only with enough matches, inliers and median parallax (rejects pure rotation)."""

    def __init__(self, K: np.ndarray, min_matches: int = 100, min_inliers: int = 80,
                 min_parallax_deg: float = 1.0, max_error_px: float = 4.0, rotation_px: float = 2.0) -> None:
        self.K = K
        self.min_matches = min_matches
        self.min_inliers = min_inliers
        self.min_parallax = min_parallax_deg
        self.max_error = max_error_px
        self.rotation_px = rotation_px

    def _rotation_only(self, p1: np.ndarray, p2: np.ndarray) -> bool:
        """True when one camera rotation explains the matches (median residual under ``rotation_px``).

        Bearings are aligned with Kabsch (trimmed refits drop outliers); translation would leave a
        residual parallax of roughly focal * baseline / depth pixels.
        """
        Kinv = np.linalg.inv(self.K)
        b1 = np.c_[p1, np.ones(len(p1))] @ Kinv.T
        b2 = np.c_[p2, np.ones(len(p2))] @ Kinv.T
        b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
        b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
        keep = np.ones(len(b1), bool)
        for _ in range(3):
            U, _, Vt = np.linalg.svd(b2[keep].T @ b1[keep])
            R = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
            res = np.linalg.norm(b2 - b1 @ R.T, axis=1) * self.K[0, 0]  # ~ pixels
            keep = res <= np.percentile(res, 70)
        return float(np.median(res)) < self.rotation_px

    def try_init(self, ref: FrameFeatures, cur: FrameFeatures) -> InitResult | str:
        """An initial two-view map, or the reason why not (a short phrase)."""
        pairs = match_descriptors(ref.descriptors, cur.descriptors)
        return self.from_matches(ref.keypoints[pairs[:, 0]], cur.keypoints[pairs[:, 1]], pairs)

    def from_matches(self, p1: np.ndarray, p2: np.ndarray, pairs: np.ndarray) -> InitResult | str:
        """Two-view geometry of matched pixels ``p1[i] <-> p2[i]``; never raises on degenerate input."""
        if len(p1) < max(MIN_POINTS, self.min_matches):
            return f"too few matches ({len(p1)})"
        if float(np.median(np.linalg.norm(p2 - p1, axis=1))) < 0.5:
            return "no camera motion (identical frames)"
        try:
            return self._two_view(np.asarray(p1, np.float64), np.asarray(p2, np.float64), pairs)
        except DegenerateGeometry as e:
            return str(e)

    def _two_view(self, p1: np.ndarray, p2: np.ndarray, pairs: np.ndarray) -> InitResult | str:
        with cv_guard("essential matrix"):
            E, mask = cv2.findEssentialMat(p1, p2, self.K, cv2.RANSAC, 0.999, 1.0)
        if E is None or E.shape != (3, 3) or mask is None or int((mask.ravel() > 0).sum()) < MIN_POINTS:
            return "no essential matrix (degenerate geometry)"
        if self._rotation_only(p1[mask.ravel() > 0], p2[mask.ravel() > 0]):
            return "pure rotation (no parallax)"
        with cv_guard("pose recovery"):
            n, R, t, mask = cv2.recoverPose(E, p1, p2, self.K, mask=mask)
        inl = mask.ravel() > 0
        if inl.sum() < self.min_inliers:
            return f"too few pose inliers ({int(inl.sum())})"
        T1, T2 = np.eye(4), np.eye(4)
        T2[:3, :3], T2[:3, 3] = R, t.ravel()
        P = triangulate(self.K, T1, T2, p1, p2)
        e1, z1 = reprojection_error(self.K, T1, P, p1)
        e2, z2 = reprojection_error(self.K, T2, P, p2)
        par = parallax_deg(np.zeros(3), -R.T @ t.ravel(), P)
        good = inl & (z1 > 0) & (z2 > 0) & (e1 < self.max_error) & (e2 < self.max_error) & (par > 0.2)
        if good.sum() < max(self.min_inliers, MIN_POINTS):
            return f"too few triangulated points ({int(good.sum())})"
        med = float(np.median(par[good]))
        if med < self.min_parallax:
            return f"not enough parallax ({med:.2f} deg)"
        scale = 1.0 / float(np.median(z1[good]))
        return InitResult(R, t.ravel() * scale, pairs[good], P[good] * scale, med)
