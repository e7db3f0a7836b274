"""The apps on top of the session: cli/ (main.py's commands), demo.py (the main job), server.py + web/.

Nothing outside app/ (and evals/, which the CLI runs) imports it.
"""
