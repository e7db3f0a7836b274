"""Local bundle adjustment with GTSAM (Levenberg-Marquardt on a projection factor graph)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tools.slam.map import SlamMap, invert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BAReport:
    keyframes: int
    fixed: int
    points: int
    observations: int
    outliers: int
    ms: float
    ok: bool = True


class BundleAdjuster(Protocol):
    """Refines the poses of ``local`` keyframes and the points they see; ``fixed`` keyframes anchor the gauge."""

    def adjust(self, smap: SlamMap, K: np.ndarray, local: list[int], fixed: list[int]) -> BAReport: ...


class GtsamBundleAdjuster:
    """Huber-robust reprojection factors; observations off by more than ``outlier_px`` are dropped after."""

    def __init__(self, iterations: int = 10, outlier_px: float = 4.0, huber_px: float = 2.45) -> None:
        import gtsam  # heavy import kept local to the adjuster

        self.gtsam = gtsam
        self.iterations = iterations
        self.outlier_px = outlier_px
        self.huber_px = huber_px

    def adjust(self, smap: SlamMap, K: np.ndarray, local: list[int], fixed: list[int]) -> BAReport:
        g = self.gtsam
        t0 = time.perf_counter()
        cal = g.Cal3_S2(K[0, 0], K[1, 1], 0.0, K[0, 2], K[1, 2])
        noise = g.noiseModel.Robust.Create(g.noiseModel.mEstimator.Huber.Create(self.huber_px),
                                           g.noiseModel.Isotropic.Sigma(2, 1.0))
        prior = g.noiseModel.Isotropic.Sigma(6, 1e-6)
        X = lambda i: g.symbol("x", i)  # noqa: E731
        L = lambda j: g.symbol("l", j)  # noqa: E731
        graph, values = g.NonlinearFactorGraph(), g.Values()
        in_graph = set(local) | set(fixed)
        pids = [p for p in smap.covisible_points(local)
                if sum(k in in_graph for k in smap.points[p].observations) >= 2]
        for k in in_graph:
            values.insert(X(k), g.Pose3(invert(smap.keyframes[k].T_cw)))
        for k in fixed:
            graph.add(g.PriorFactorPose3(X(k), g.Pose3(invert(smap.keyframes[k].T_cw)), prior))
        n_obs = 0
        edges: list[tuple[int, int, int]] = []
        for p in pids:
            mp = smap.points[p]
            values.insert(L(p), mp.position.astype(float))
            for k, kp in mp.observations.items():
                if k in in_graph:
                    uv = smap.keyframes[k].keypoints[kp].astype(float)
                    graph.add(g.GenericProjectionFactorCal3_S2(uv, noise, X(k), L(p), cal))
                    edges.append((p, k, kp))
                    n_obs += 1
        params = g.LevenbergMarquardtParams()
        params.setMaxIterations(self.iterations)
        try:
            result = g.LevenbergMarquardtOptimizer(graph, values, params).optimize()
        except RuntimeError as e:  # indeterminant system: keep the map as it is
            log.warning("local BA skipped: %s", e)
            return BAReport(len(local), len(fixed), len(pids), n_obs, 0, 1000 * (time.perf_counter() - t0), False)
        for k in local:
            if k not in fixed:
                smap.keyframes[k].T_cw = invert(result.atPose3(X(k)).matrix())
        for p in pids:
            smap.points[p].position = np.asarray(result.atPoint3(L(p)), float)
        outliers = self._drop_outliers(smap, K, edges)
        return BAReport(len(local), len(fixed), len(pids), n_obs, outliers, 1000 * (time.perf_counter() - t0))

    def _drop_outliers(self, smap: SlamMap, K: np.ndarray, edges: list[tuple[int, int, int]]) -> int:
        if not edges:
            return 0
        e = np.array(edges)
        P = np.array([smap.points[p].position for p in e[:, 0]])
        T = np.array([smap.keyframes[k].T_cw for k in e[:, 1]])
        Xc = np.einsum("nij,nj->ni", T[:, :3, :3], P) + T[:, :3, 3]
        uv = np.array([smap.keyframes[k].keypoints[kp] for _, k, kp in edges])
        z = np.maximum(Xc[:, 2], 1e-9)
        proj = np.stack([K[0, 0] * Xc[:, 0] / z + K[0, 2], K[1, 1] * Xc[:, 1] / z + K[1, 2]], 1)
        bad = (np.linalg.norm(proj - uv, axis=1) > self.outlier_px) | (Xc[:, 2] <= 0)
        for p, k, kp in e[bad]:
            mp = smap.points.get(int(p))
            if mp is None:
                continue
            mp.observations.pop(int(k), None)
            smap.keyframes[int(k)].point_ids[int(kp)] = -1
            if len(mp.observations) < 2:
                smap.remove_point(int(p))
        return int(bad.sum())
