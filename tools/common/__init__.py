"""What tools/ and agent/ both import: errors with codes, the tools' settings sections, PCM helpers,
live devices that come and go (``devices.py``: state, back-off, reconnecting).

tools/ never imports agent/ (tests/test_layers.py).
"""
