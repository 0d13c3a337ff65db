#!/bin/bash
# Strict scores of the conversation files and their standalone versions, per dossier.
cd "$(dirname "$0")/.." && export PYTHONPATH=$PWD
PY=${PYTHON:-python}
run() { $PY -c 'from bot.cli import main; main()' "$@"; }
for f in bench/questions/conversations/*.standalone.jsonl; do
  name=$(basename "$f" .standalone.jsonl)
  # INDEX_ROOT=.dossier/eval reuses the indexes `dossier-bot eval DOSSIERS dev_questions.jsonl` built
  idx=${INDEX_ROOT:-/tmp/chat-eval}/$name
  if [ "$name" = bundled ]; then
    corpus=corpus
    [ -z "${INDEX_ROOT:-}" ] || idx=$INDEX_ROOT/dev_questions
  else
    corpus=../shared/eval/dossiers/$name/corpus
  fi
  [ -d "$idx" ] || run index build --corpus "$corpus" --index "$idx" >/dev/null 2>&1 || run index build "$corpus" --index "$idx" >/dev/null
  conv=$(run eval bench/questions/conversations/$name.jsonl --index "$idx" --corpus "$corpus" --json)
  alone=$(run eval "$f" --index "$idx" --corpus "$corpus" --json)
  echo "$name conv=$(echo "$conv" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get("strict"), d["answerable"])') alone=$(echo "$alone" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get("strict"), d["answerable"])')"
done
