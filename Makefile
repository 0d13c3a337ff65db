# The two commands of the README. Both set everything up first (idempotent).
.PHONY: chat test setup lint bench bench-onnx

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
