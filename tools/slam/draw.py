"""Top-down (x-z) picture of the map: points, trajectory, keyframes and labelled objects."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.slam.map import SlamMap, camera_center


def draw_top_down(m: SlamMap, out: str | Path, gt_in_map: np.ndarray | None = None, title: str = "") -> Path:
    """Write a PNG; ``gt_in_map`` (N, 3) is ground truth already aligned into map coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    with m.lock:
        P = np.array([p.position for p in m.points.values()]).reshape(-1, 3)
        traj = np.array([camera_center(e.T_cw) for e in m.trajectory if e.T_cw is not None]).reshape(-1, 3)
        kfs = np.array([k.center for k in m.keyframes.values()]).reshape(-1, 3)
        lms = [(lm.label, lm.position) for lm in m.landmarks.values()]
    if len(P):
        lo, hi = np.percentile(P, [2, 98], axis=0)  # keep far outliers from squashing the plot
        keep = np.all((P >= lo - (hi - lo)) & (P <= hi + (hi - lo)), axis=1)
        ax.scatter(P[keep, 0], P[keep, 2], s=1, c="0.6", label=f"map points ({len(P)})")
    if gt_in_map is not None and len(gt_in_map):
        ax.plot(gt_in_map[:, 0], gt_in_map[:, 2], "g--", lw=1.5, label="ground truth (aligned)")
    if len(traj):
        ax.plot(traj[:, 0], traj[:, 2], "b-", lw=1.5, label="camera trajectory")
    if len(kfs):
        ax.scatter(kfs[:, 0], kfs[:, 2], s=14, c="r", marker="^", label=f"keyframes ({len(kfs)})")
    for label, pos in lms:
        ax.scatter([pos[0]], [pos[2]], s=60, c="orange", marker="*", edgecolors="k")
        ax.annotate(label, (pos[0], pos[2]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("x (map units)")
    ax.set_ylabel("z (map units, forward)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or "SLAM map, top-down")
    ax.legend(loc="best", fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
