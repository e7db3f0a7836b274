"""The sparse map: keyframes, map points, labelled landmarks and the per-frame trajectory.

Poses are 4x4 ``T_cw`` (world -> camera, OpenCV axes: x right, y down, z forward).
Map units are set by the initialisation (median depth of the first points = 1).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Status(str, Enum):
    """Tracking state reported for every frame."""

    NOT_INITIALISED = "not initialised"
    TRACKING = "tracking"
    LOST = "lost"
    RELOCALISED = "relocalised"


def camera_center(T_cw: np.ndarray) -> np.ndarray:
    """Camera position in the world from a world->camera pose."""
    return -T_cw[:3, :3].T @ T_cw[:3, 3]


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def to_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.ravel(t)
    return T


@dataclass
class Keyframe:
    id: int
    frame_index: int
    timestamp: float
    T_cw: np.ndarray
    keypoints: np.ndarray  # (N, 2) pixel coordinates
    descriptors: np.ndarray  # (N, 32) uint8 ORB
    point_ids: np.ndarray  # (N,) map point id per keypoint, -1 when none

    @property
    def center(self) -> np.ndarray:
        return camera_center(self.T_cw)


@dataclass
class MapPoint:
    id: int
    position: np.ndarray  # (3,) world
    descriptor: np.ndarray  # (32,) uint8, from the latest observation
    observations: dict[int, int] = field(default_factory=dict)  # keyframe id -> keypoint index


@dataclass
class Landmark:
    """A labelled object anchored to map points."""

    label: str
    position: np.ndarray
    n_points: int
    first_seen: float
    last_seen: float
    sightings: int = 1


@dataclass
class TrajectoryEntry:
    frame_index: int
    timestamp: float
    status: Status
    T_cw: np.ndarray | None


class SlamMap:
    """All mapped state; ``lock`` guards readers (query_map) against the tracking thread."""

    def __init__(self) -> None:
        self.keyframes: dict[int, Keyframe] = {}
        self.points: dict[int, MapPoint] = {}
        self.landmarks: dict[str, Landmark] = {}
        self.trajectory: list[TrajectoryEntry] = []
        self.lock = threading.RLock()
        self._next_kf = 0
        self._next_pt = 0

    # -- construction -------------------------------------------------
    def add_keyframe(self, frame_index: int, timestamp: float, T_cw: np.ndarray, keypoints: np.ndarray,
                     descriptors: np.ndarray, point_ids: np.ndarray | None = None) -> Keyframe:
        ids = np.full(len(keypoints), -1, np.int64) if point_ids is None else point_ids.copy()
        kf = Keyframe(self._next_kf, frame_index, timestamp, T_cw.copy(), keypoints, descriptors, ids)
        self._next_kf += 1
        self.keyframes[kf.id] = kf
        for i, pid in enumerate(ids):
            if pid >= 0 and pid in self.points:
                self.points[pid].observations[kf.id] = i
        return kf

    def add_point(self, position: np.ndarray, descriptor: np.ndarray, obs: dict[int, int]) -> int:
        pid = self._next_pt
        self._next_pt += 1
        self.points[pid] = MapPoint(pid, np.asarray(position, float), descriptor.copy(), dict(obs))
        for kf_id, kp in obs.items():
            self.keyframes[kf_id].point_ids[kp] = pid
        return pid

    def remove_point(self, pid: int) -> None:
        p = self.points.pop(pid, None)
        if p is None:
            return
        for kf_id, kp in p.observations.items():
            kf = self.keyframes.get(kf_id)
            if kf is not None and kf.point_ids[kp] == pid:
                kf.point_ids[kp] = -1

    # -- reading ------------------------------------------------------
    def point_arrays(self, ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, positions (N,3), descriptors (N,32)) for the given or all points."""
        ids = list(self.points) if ids is None else [i for i in ids if i in self.points]
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 32), np.uint8)
        pts = [self.points[i] for i in ids]
        return (np.array(ids, np.int64), np.array([p.position for p in pts]),
                np.array([p.descriptor for p in pts], np.uint8))

    def covisible_points(self, kf_ids: list[int]) -> list[int]:
        seen: dict[int, None] = {}
        for k in kf_ids:
            for pid in self.keyframes[k].point_ids:
                if pid >= 0 and pid in self.points:
                    seen[int(pid)] = None
        return list(seen)

    @property
    def initialised(self) -> bool:
        return len(self.keyframes) >= 2

    def current_pose(self) -> tuple[np.ndarray | None, float | None]:
        """Latest known pose and the timestamp of the latest frame."""
        with self.lock:
            last_t = self.trajectory[-1].timestamp if self.trajectory else None
            for e in reversed(self.trajectory):
                if e.T_cw is not None:
                    return e.T_cw, last_t
        return None, last_t

    def path_length(self) -> float:
        """Distance travelled by the camera over the frames with a pose (map units)."""
        with self.lock:
            c = np.array([camera_center(e.T_cw) for e in self.trajectory if e.T_cw is not None])
        return float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum()) if len(c) > 1 else 0.0

    def status_counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for e in self.trajectory:
            out[e.status.value] += 1
        return out
