#!/bin/sh
# Container entrypoint: bring the index up to date with the corpus, then run dossier-bot as
# PID 1 (exec), so SIGTERM from `docker stop` reaches the bot and it shuts down gracefully.
#
#   (no arguments)     dossier-bot serve
#   serve|ask|...      dossier-bot <arguments>
#   anything else      run as given (e.g. `sh` to look around)
#
# DOSSIER_INDEX_ON_START: auto (default: build when the index is missing or does not match
# the corpus), always (incremental build every start), never.
set -eu

log() {
    printf 'dossier-entrypoint: %s\n' "$*" >&2
}

if [ "$#" -eq 0 ]; then
    set -- serve
fi
case "$1" in
    dossier-bot) shift ;;
    -*|serve|ask|chat|eval|index|config|sources|feedback) ;;
    *) exec "$@" ;;
esac

corpus="${DOSSIER_CORPUS_DIR:-corpus}"
index="${DOSSIER_INDEX_DIR:-.dossier/index}"
mode="${DOSSIER_INDEX_ON_START:-auto}"

needs_index=no
case "${1:-}" in
    serve|ask|chat|eval|sources) needs_index=yes ;;
esac

if [ "$needs_index" = yes ] && [ "$mode" != never ]; then
    if [ ! -d "$corpus" ]; then
        log "corpus folder $corpus does not exist: mount the dossier there (-v /path/to/articles:$corpus:ro) or set DOSSIER_CORPUS_DIR"
        exit 2
    fi
    if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
        log "warning: corpus folder $corpus is empty; the bot will decline every question until articles are added"
    fi
    case "$mode" in
        always) reason="DOSSIER_INDEX_ON_START=always" ;;
        auto)
            set +e
            reason="$(python -m bot.watch --corpus "$corpus" --index "$index")"
            status=$?
            set -e
            case "$status" in
                0) reason="" ;;
                3) ;;
                *) reason="the index could not be checked (exit $status)" ;;
            esac
            ;;
        *)
            log "DOSSIER_INDEX_ON_START=$mode is not one of auto, always, never"
            exit 2
            ;;
    esac
    if [ -n "$reason" ]; then
        log "building the index in $index ($reason)"
        # stdout stays the command's own (e.g. `ask --json`), so the report goes to stderr
        dossier-bot index build --corpus "$corpus" --index "$index" >&2
    else
        log "index in $index is up to date with $corpus"
    fi
fi

exec dossier-bot "$@"
