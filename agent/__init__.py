"""MMChat: one utterance, top-down, is the folder order.

listen/ -> identity/ -> think/ -> speak/, driven by session/, with app/ (CLI, demo, server) on top
and evals/ (every measurement) beside it; common/ is what all of them share. The path file by
file is in agent/session/__init__.py; the layer rule is checked by tests/test_layers.py.
"""
