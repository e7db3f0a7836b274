"""Camera perception: faces (mesh, emotion) and hands (gestures)."""
