"""Monocular SLAM (ORB tracking, two-view init, keyframes, GTSAM local BA, relocalisation),
labelled landmarks on the map and the ``query_map`` backend."""
