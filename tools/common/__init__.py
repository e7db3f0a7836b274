"""What tools/ and agent/ both import: errors with codes, the tools' settings sections, PCM helpers.

tools/ never imports agent/ (tests/test_layers.py).
"""
