"""Monocular SLAM: initialisation, frame tracking, keyframes + triangulation, local BA, relocalisation.

``MonocularSlam.process(frame, t)`` returns a :class:`FrameResult` with one of the statuses in
:class:`tools.slam.map.Status`; it never raises on bad frames (blank, textureless, pure rotation).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from tools.common.settings import SlamSettings
from tools.slam.ba import BundleAdjuster, GtsamBundleAdjuster
from tools.slam.features import FeatureExtractor, FrameFeatures, OrbExtractor, match_descriptors, search_by_projection
from tools.slam.initializer import (
    DegenerateGeometry,
    InitResult,
    TwoViewInitializer,
    cv_guard,
    parallax_deg,
    reprojection_error,
    triangulate,
)
from tools.slam.map import SlamMap, Status, TrajectoryEntry, camera_center, to_pose

log = logging.getLogger(__name__)


@dataclass
class FrameResult:
    index: int
    timestamp: float
    status: Status
    T_cw: np.ndarray | None
    tracked: int = 0  # map points matched (PnP inliers)
    keyframe: bool = False
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # ms: track, keyframe, ba


@dataclass
class _Current:
    """The last processed frame: its features and keypoint -> map point matches."""

    features: FrameFeatures
    pairs: np.ndarray  # (M, 2) keypoint index, map point id
    T_cw: np.ndarray | None


class MonocularSlam:
    def __init__(self, K: np.ndarray, settings: SlamSettings | None = None,
                 extractor: FeatureExtractor | None = None, adjuster: BundleAdjuster | None = None) -> None:
        self.cfg = settings or SlamSettings()
        c = self.cfg
        self.K = np.asarray(K, float)
        self.extract = extractor or OrbExtractor(c.n_features, c.scale_factor, c.n_levels, c.fast_threshold)
        self.adjuster = adjuster or GtsamBundleAdjuster(c.ba_iterations)
        self.initializer = TwoViewInitializer(self.K, c.init_min_matches, c.init_min_inliers,
                                              c.init_min_parallax_deg)
        self.map = SlamMap()
        self.current: _Current | None = None
        self._ref: tuple[int, float, FrameFeatures] | None = None  # initialisation reference frame
        self._velocity = np.eye(4)
        self._prev_T: np.ndarray | None = None
        self._lost = False
        self._last_kf_frame = 0
        self._local_points: list[int] = []
        self._index = -1

    # ------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp: float) -> FrameResult:
        """Track one frame (BGR or grey); the result is also appended to ``map.trajectory``."""
        self._index += 1
        t0 = time.perf_counter()
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        feats = self.extract(gray)
        with self.map.lock:
            try:
                if not self.map.initialised:
                    res = self._initialise(feats, timestamp)
                elif self._lost:
                    res = self._relocalise(feats, timestamp)
                else:
                    res = self._track(feats, timestamp)
            except DegenerateGeometry as e:  # a guarded OpenCV call refused this frame's geometry
                res = self._degenerate(feats, timestamp, str(e))
            res.timings["track"] = 1000 * (time.perf_counter() - t0) - res.timings.get("keyframe", 0.0)
            self.map.trajectory.append(TrajectoryEntry(res.index, timestamp, res.status, res.T_cw))
        return res

    def _degenerate(self, feats: FrameFeatures, t: float, why: str) -> FrameResult:
        """This frame's geometry was refused: not initialised yet, else lost (relocalise next)."""
        self.current = _Current(feats, np.zeros((0, 2), np.int64), None)
        if not self.map.initialised:
            return FrameResult(self._index, t, Status.NOT_INITIALISED, None, message=why)
        self._lost = True
        return FrameResult(self._index, t, Status.LOST, None, message=why)

    def frame_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Last frame: pixel positions and map point ids of its matches, and its pose (None if lost)."""
        cur = self.current
        if cur is None or len(cur.pairs) == 0:
            return np.zeros((0, 2)), np.zeros(0, np.int64), None if cur is None else cur.T_cw
        return cur.features.keypoints[cur.pairs[:, 0]], cur.pairs[:, 1], cur.T_cw

    # -- initialisation ------------------------------------------------
    def _initialise(self, feats: FrameFeatures, t: float) -> FrameResult:
        i, c = self._index, self.cfg
        self.current = _Current(feats, np.zeros((0, 2), np.int64), None)
        if self._ref is None or i - self._ref[0] > c.init_max_frames:
            if len(feats) < c.init_min_matches:
                self._ref = None
                return FrameResult(i, t, Status.NOT_INITIALISED, None,
                                   message=f"too few features to start ({len(feats)})")
            self._ref = (i, t, feats)
            return FrameResult(i, t, Status.NOT_INITIALISED, None, message="reference frame chosen")
        out = self.initializer.try_init(self._ref[2], feats)
        if isinstance(out, str):
            return FrameResult(i, t, Status.NOT_INITIALISED, None, message=out)
        return self._create_map(out, feats, t)

    def _create_map(self, init: InitResult, feats: FrameFeatures, t: float) -> FrameResult:
        assert self._ref is not None
        ref_i, ref_t, ref = self._ref
        m = self.map
        kf0 = m.add_keyframe(ref_i, ref_t, np.eye(4), ref.keypoints, ref.descriptors)
        T1 = to_pose(init.R, init.t)
        kf1 = m.add_keyframe(self._index, t, T1, feats.keypoints, feats.descriptors)
        for (a, b), P in zip(init.pairs, init.points):
            m.add_point(P, feats.descriptors[b], {kf0.id: int(a), kf1.id: int(b)})
        t_ba = time.perf_counter()
        self.adjuster.adjust(m, self.K, [kf0.id, kf1.id], [kf0.id])
        self._normalise_scale()
        ba_ms = 1000 * (time.perf_counter() - t_ba)
        T = m.keyframes[kf1.id].T_cw
        self._after_keyframe(T)
        pairs = np.array([(k, p) for k, p in enumerate(m.keyframes[kf1.id].point_ids) if p >= 0], np.int64)
        self.current = _Current(feats, pairs.reshape(-1, 2), T)
        self._prev_T, self._velocity, self._lost = T, np.eye(4), False
        log.info("initialised at frame %d: %d points, parallax %.1f deg", self._index, len(m.points),
                 init.parallax_deg)
        return FrameResult(self._index, t, Status.TRACKING, T, len(pairs), True,
                           f"initialised with {len(m.points)} points", {"ba": ba_ms, "keyframe": ba_ms})

    def _normalise_scale(self) -> None:
        """After the first BA: median depth of the points in the first keyframe = 1 map unit."""
        m = self.map
        P = np.array([p.position for p in m.points.values()])
        s = 1.0 / max(float(np.median(P[:, 2])), 1e-9) if len(P) else 1.0
        for p in m.points.values():
            p.position = p.position * s
        for kf in m.keyframes.values():
            kf.T_cw = kf.T_cw.copy()
            kf.T_cw[:3, 3] *= s

    # -- tracking --------------------------------------------------------
    def _track(self, feats: FrameFeatures, t: float) -> FrameResult:
        c = self.cfg
        assert self._prev_T is not None  # tracking follows the map's first pose
        pred = self._velocity @ self._prev_T
        T, pairs = self._track_from(pred, feats, c.match_radius_px)
        if T is None:  # fast motion: wider window, then plain descriptor matching
            T, pairs = self._track_from(pred, feats, 3 * c.match_radius_px)
        if T is None:
            T, pairs = self._pnp_against(feats, self._local_points)
        if T is None:
            self._lost = True
            self.current = _Current(feats, np.zeros((0, 2), np.int64), None)
            return FrameResult(self._index, t, Status.LOST, None, len(pairs),
                               message=f"tracking lost ({len(feats)} features, {len(pairs)} matches)")
        return self._tracked(feats, t, T, pairs, Status.TRACKING)

    def _tracked(self, feats: FrameFeatures, t: float, T: np.ndarray, pairs: np.ndarray,
                 status: Status) -> FrameResult:
        self._velocity = T @ np.linalg.inv(self._prev_T) if status == Status.TRACKING and self._prev_T is not None \
            else np.eye(4)
        self._prev_T = T
        self.current = _Current(feats, pairs, T)
        res = FrameResult(self._index, t, status, T, len(pairs))
        if status == Status.TRACKING and self._need_keyframe(len(pairs)):
            t0 = time.perf_counter()
            res.timings["ba"] = self._insert_keyframe(feats, t, T, pairs)
            res.T_cw = self._prev_T = self.current.T_cw
            res.keyframe = True
            res.timings["keyframe"] = 1000 * (time.perf_counter() - t0)
        return res

    def _track_from(self, T0: np.ndarray, feats: FrameFeatures, radius: float) -> tuple[np.ndarray | None, np.ndarray]:
        """Pose from local map points projected with a predicted pose, then refined and re-searched."""
        pairs = self._project_match(T0, feats, radius)
        T, pairs = self._solve_pnp(feats, pairs, T0)
        if T is None:
            return None, pairs
        T2, pairs2 = self._solve_pnp(feats, self._project_match(T, feats, max(3.0, radius / 3)), T)
        return (T2, pairs2) if T2 is not None and len(pairs2) >= len(pairs) else (T, pairs)

    def _project_match(self, T: np.ndarray, feats: FrameFeatures, radius: float) -> np.ndarray:
        ids, P, D = self.map.point_arrays(self._local_points)
        if len(ids) == 0:
            return np.zeros((0, 2), np.int64)
        Xc = P @ T[:3, :3].T + T[:3, 3]
        front = Xc[:, 2] > 1e-6
        uv = (Xc[front, :2] / Xc[front, 2:3]) * [self.K[0, 0], self.K[1, 1]] + [self.K[0, 2], self.K[1, 2]]
        ids, D = ids[front], D[front]
        m = search_by_projection(uv, D, feats, radius, self.cfg.max_hamming)
        return np.stack([m[:, 1], ids[m[:, 0]]], 1) if len(m) else np.zeros((0, 2), np.int64)

    def _solve_pnp(self, feats: FrameFeatures, pairs: np.ndarray, T0: np.ndarray | None,
                   min_inliers: int | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """RANSAC PnP (seeded with T0 when given) + LM refinement; (pose, inlier pairs)."""
        need = min_inliers or self.cfg.min_tracked
        if len(pairs) < need:
            return None, pairs
        P = np.array([self.map.points[p].position for p in pairs[:, 1]], np.float64)
        uv = feats.keypoints[pairs[:, 0]].astype(np.float64)
        try:
            with cv_guard("PnP"):
                if T0 is not None:
                    rvec, tvec = cv2.Rodrigues(T0[:3, :3])[0], T0[:3, 3].reshape(3, 1).copy()
                    ok, rvec, tvec, inl = cv2.solvePnPRansac(P, uv, self.K, None, rvec, tvec, True, 100, 3.0,
                                                             0.99, flags=cv2.SOLVEPNP_ITERATIVE)
                else:
                    ok, rvec, tvec, inl = cv2.solvePnPRansac(P, uv, self.K, None, iterationsCount=300,
                                                             reprojectionError=4.0, confidence=0.999,
                                                             flags=cv2.SOLVEPNP_SQPNP)
                if not ok or inl is None or len(inl) < need:
                    return None, pairs[inl.ravel()] if inl is not None else pairs[:0]
                inl = inl.ravel()
                rvec, tvec = cv2.solvePnPRefineLM(P[inl], uv[inl], self.K, None, rvec, tvec)
        except DegenerateGeometry:  # e.g. all map points on a line: no pose from these matches
            return None, pairs[:0]
        T = to_pose(cv2.Rodrigues(rvec)[0], tvec)
        err, z = reprojection_error(self.K, T, P, uv)
        good = (err < 3.0) & (z > 0)
        if good.sum() < need:
            return None, pairs[good]
        return T, pairs[good]

    def _pnp_against(self, feats: FrameFeatures, point_ids: list[int]) -> tuple[np.ndarray | None, np.ndarray]:
        """Pose from descriptor matches to the given map points (no pose prior)."""
        ids, _, D = self.map.point_arrays(point_ids)
        m = match_descriptors(feats.descriptors, D, ratio=0.8, max_dist=self.cfg.max_hamming)
        pairs = np.stack([m[:, 0], ids[m[:, 1]]], 1) if len(m) else np.zeros((0, 2), np.int64)
        T, pairs = self._solve_pnp(feats, pairs, None, self.cfg.reloc_min_inliers)
        if T is None:
            return None, pairs
        T2, pairs2 = self._track_from(T, feats, self.cfg.match_radius_px / 2)
        return (T2, pairs2) if T2 is not None else (T, pairs)

    def _relocalise(self, feats: FrameFeatures, t: float) -> FrameResult:
        T, pairs = self._pnp_against(feats, list(self.map.points))
        if T is None:
            self.current = _Current(feats, np.zeros((0, 2), np.int64), None)
            return FrameResult(self._index, t, Status.LOST, None, len(pairs),
                               message=f"lost; relocalisation found {len(pairs)} inliers")
        self._lost = False
        # continue from the keyframes nearest to the recovered pose
        near = sorted(self.map.keyframes.values(), key=lambda k: np.linalg.norm(k.center - camera_center(T)))
        self._local_points = self.map.covisible_points([k.id for k in near[: self.cfg.local_keyframes]])
        res = self._tracked(feats, t, T, pairs, Status.RELOCALISED)
        res.message = f"relocalised against the map with {len(pairs)} inliers"
        return res

    # -- keyframes ---------------------------------------------------------
    def _need_keyframe(self, n_tracked: int) -> bool:
        c = self.cfg
        since = self._index - self._last_kf_frame
        if since < c.kf_min_interval:
            return False
        last = self.map.keyframes[max(self.map.keyframes)]
        ref_tracked = int((last.point_ids >= 0).sum())
        return since >= c.kf_max_interval or n_tracked < c.kf_track_ratio * ref_tracked

    def _insert_keyframe(self, feats: FrameFeatures, t: float, T: np.ndarray, pairs: np.ndarray) -> float:
        """Add a keyframe, triangulate new points with recent keyframes, run local BA; BA ms."""
        m = self.map
        ids = np.full(len(feats), -1, np.int64)
        ids[pairs[:, 0]] = pairs[:, 1]
        kf = m.add_keyframe(self._index, t, T, feats.keypoints, feats.descriptors, ids)
        for kp, pid in pairs:
            m.points[int(pid)].descriptor = feats.descriptors[kp]
        recent = sorted(m.keyframes)[-3:-1][::-1]
        for other in recent:
            self._triangulate_new(kf.id, other)
        local = sorted(m.keyframes)[-self.cfg.local_keyframes:]
        fixed = self._fixed_keyframes(local)
        t0 = time.perf_counter()
        self.adjuster.adjust(m, self.K, local, fixed)
        ba_ms = 1000 * (time.perf_counter() - t0)
        self._after_keyframe(m.keyframes[kf.id].T_cw)
        new_pairs = np.array([(k, p) for k, p in enumerate(m.keyframes[kf.id].point_ids) if p >= 0], np.int64)
        self.current = _Current(feats, new_pairs.reshape(-1, 2), m.keyframes[kf.id].T_cw)
        return ba_ms

    def _fixed_keyframes(self, local: list[int]) -> list[int]:
        """Keyframes outside the window that see its points; at least two fixed for the monocular gauge."""
        local_set = set(local)
        outside: dict[int, int] = {}
        for pid in self.map.covisible_points(local):
            for k in self.map.points[pid].observations:
                if k not in local_set:
                    outside[k] = outside.get(k, 0) + 1
        fixed = sorted(outside, key=lambda k: -outside[k])[:10]
        for k in sorted(local):
            if len(fixed) >= 2:
                break
            fixed.append(k)
        return fixed

    def _after_keyframe(self, T: np.ndarray) -> None:
        self._last_kf_frame = self._index
        self._prev_T = T
        local = sorted(self.map.keyframes)[-self.cfg.local_keyframes:]
        self._local_points = self.map.covisible_points(local)

    def _triangulate_new(self, k_new: int, k_old: int) -> int:
        """Match unmapped keypoints of two keyframes and add the well-conditioned triangulations."""
        m, K = self.map, self.K
        a, b = m.keyframes[k_new], m.keyframes[k_old]
        ia, ib = np.nonzero(a.point_ids < 0)[0], np.nonzero(b.point_ids < 0)[0]
        pairs = match_descriptors(a.descriptors[ia], b.descriptors[ib], 0.8, self.cfg.max_hamming)
        if len(pairs) == 0:
            return 0
        ia, ib = ia[pairs[:, 0]], ib[pairs[:, 1]]
        try:
            P = triangulate(K, a.T_cw, b.T_cw, a.keypoints[ia], b.keypoints[ib])
        except DegenerateGeometry:  # the new keyframe is kept; it just adds no points
            return 0
        ea, za = reprojection_error(K, a.T_cw, P, a.keypoints[ia])
        eb, zb = reprojection_error(K, b.T_cw, P, b.keypoints[ib])
        par = parallax_deg(a.center, b.center, P)
        good = (za > 0) & (zb > 0) & (ea < 2.0) & (eb < 2.0) & (par > 1.0)
        for i, j, X in zip(ia[good], ib[good], P[good]):
            m.add_point(X, a.descriptors[i], {k_new: int(i), k_old: int(j)})
        return int(good.sum())
