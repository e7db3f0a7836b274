"""``main.py map``: monocular SLAM over a video or an image folder (contract in ../shared/CLI.md).

JSON: ``keyframes``, ``map_points``, ``trajectory_path`` (TUM, under runs/), ``status_counts``;
with ``--gt`` also ``ate_rmse`` and ``path_length`` after Sim(3) alignment. ``-o`` draws the map.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.common.config import Settings
from tools.common.errors import ErrorCode, MMChatError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("map", parents=[common], help="monocular SLAM over a video or an image folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="a video file")
    src.add_argument("--frames", help="an image folder (times.txt / rgb.txt give timestamps)")
    p.add_argument("--intrinsics", required=True, help="K.yaml with fx, fy, cx, cy [width, height]")
    p.add_argument("--gt", default=None, help="ground-truth TUM trajectory: report ATE after Sim(3) alignment")
    p.add_argument("-o", "--output", default=None, help="write a top-down PNG of the map here")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.set_defaults(handler=map_sequence)


def map_sequence(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.common.config import new_run_dir as run_dir
    from tools.slam.io import SequenceError, folder_frames, read_intrinsics, read_tum, video_frames
    from tools.slam.run import run_sequence

    try:
        K, size = read_intrinsics(args.intrinsics)
        if args.gt:
            read_tum(args.gt)  # a bad ground-truth file fails now, not after the whole SLAM run
        frames = video_frames(args.video) if args.video else folder_frames(args.frames)
        run = run_sequence(frames, K, settings.slam, size, args.max_frames)
        out: dict[str, Any] = run.summary()
        traj = run.write_trajectory(run_dir(settings) / "trajectory.txt")
        out["trajectory_path"] = str(traj)
        gt_map = None
        if args.gt:
            stats, gt_map = run.evaluate(args.gt)
            out.update(stats)
    except SequenceError as e:
        raise MMChatError(str(e), ErrorCode.BAD_INPUT) from None
    if args.output:
        from tools.slam.draw import draw_top_down

        title = Path(args.video or args.frames).name
        if out.get("ate_rmse") is not None:
            title += f"  ATE {out['ate_rmse']:.4f} ({out.get('ate_percent')} % of path)"
        out["image"] = str(draw_top_down(run.slam.map, args.output, gt_map, title))
    return out
