# The two commands of the README. Both set everything up first (idempotent).
.PHONY: chat test setup lint lock bench bench-onnx

VENV ?= .venv

setup:
	@scripts/setup.sh

chat: setup
	@$(VENV)/bin/dossier-bot chat

test: setup
	@$(VENV)/bin/python -m pytest -q

lint: setup
	@$(VENV)/bin/ruff check .

bench: setup
	@$(VENV)/bin/python -m bench.ask_latency

# onnxruntime against sentence-transformers: cold ask, warm p50, RSS, build, size, spans
bench-onnx: setup
	@$(VENV)/bin/python -m bench.onnx --out bench/results/onnx.json

# Rewrite requirements/*.lock after a change of dependencies in pyproject.toml (scripts/lock.sh;
# LOCK_ARGS=--upgrade moves every pin to the newest allowed version).
lock:
	@VENV=$(VENV) scripts/lock.sh $(LOCK_ARGS)
