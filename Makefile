# Two commands do all set-up (idempotent; heavy parts cached under ~/.cache/mmchat):
#   make run    install if needed, then the hands-free demo session on bundled recordings
#   make test   install if needed, then the test suite (slow end-to-end runs: make test-slow)
#   make lock   re-resolve the pinned packages (requirements.lock, deps/*.lock); the only way versions change
PY := .venv/bin/python

.PHONY: run test test-slow install bench lock
install:
	@bash scripts/install.sh

run: install
	$(PY) main.py

test: install
	$(PY) -m ruff check agent tools tests scripts main.py
	$(PY) -m mypy
	$(PY) -m pytest

test-slow:
	@MMCHAT_BROWSER=1 bash scripts/install.sh
	$(PY) -m pytest -m slow

bench: install
	$(PY) main.py bench --json

lock:
	@bash scripts/lock.sh $(LOCK_ARGS)
