# keeperhub-scheduler image: one image, every process (dispatcher, executor, api, migrate, ...).
#
#   docker build --target scheduler -t keeperhub-scheduler:latest .
#   docker run --rm keeperhub-scheduler:latest --help
#
# Two stages: `build` installs the locked dependencies and the project into /app/.venv with a
# pinned uv; `scheduler` is a clean slim Python with only that venv copied in (no uv, no pip, no
# compiler), running as an unprivileged user. Nothing is written outside /tmp at run time, so the
# container runs with a read-only root filesystem (mount an emptyDir on /tmp in Kubernetes).

# The base of both stages. `make test-image` builds on a local stand-in for it (no registry there);
# anything else should keep this default: a slim Debian bookworm with Python 3.11 in /usr/local.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: resolve nothing, install exactly uv.lock ----------------------------------------------
# Both stages use the same base image, so the venv's interpreter path (/usr/local/bin) matches.
FROM ${BASE_IMAGE} AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The same uv release the lock file is written with, from PyPI.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /src

# Dependencies first (their layer is reused until uv.lock changes), then the project itself.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache

COPY README.md ./
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable --no-cache \
    && /app/.venv/bin/keeperhub-scheduler --help >/dev/null

# --- scheduler: the runtime image -------------------------------------------------------------------
FROM ${BASE_IMAGE} AS scheduler

LABEL org.opencontainers.image.title="keeperhub-scheduler" \
      org.opencontainers.image.description="KeeperHub's schedule trigger: dispatcher, executor and management API" \
      org.opencontainers.image.licenses="MIT"

# No installer or build tooling in the runtime image: pip, setuptools and wheel go too.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 scheduler \
    && useradd --system --uid 10001 --gid scheduler --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin scheduler

COPY --from=build /app/.venv /app/.venv
COPY deploy/docker/healthcheck.py /app/healthcheck.py

# Bytecode was compiled at build time; never write .pyc files into the read-only filesystem.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

USER 10001:10001
WORKDIR /tmp

# 8080: /healthz, /readyz and /metrics of the dispatcher and executor; 8000: the management API.
EXPOSE 8080 8000

# Kubernetes ignores this and uses the manifests' probes; it serves `docker run` and Compose. It
# passes when the health port or the API port answers /healthz with 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]

ENTRYPOINT ["keeperhub-scheduler"]
CMD ["--help"]
