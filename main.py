#!/usr/bin/env python3
"""MMChat entry point (also installed as the ``mmchat`` console script)."""
import sys

from agent.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
