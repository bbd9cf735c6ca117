# syntax=docker/dockerfile:1
# s2-sidecar: serves S2 stream reads to the app in the same pod over localhost gRPC.
#
#   docker build -t s2-sidecar:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9090:9090 -p 8080:8080 -e S2_SIDECAR_LISTEN=0.0.0.0:50051 \
#     -e S2_SIDECAR_EMULATOR_LISTEN=0.0.0.0:8080 s2-sidecar:0.1.0
#
# The gRPC API listens on 127.0.0.1:50051 by default (the app shares the pod's loopback); outside a
# pod, set S2_SIDECAR_LISTEN as above. With no S2_BASIN_ENDPOINT the embedded emulator serves S2's
# API on 127.0.0.1:8080 inside the container; S2_SIDECAR_EMULATOR_LISTEN as above lets the host
# append to it. The admin listener (/healthz, /readyz, /metrics) is set to
# 0.0.0.0:9090 here so kubelet probes reach it on the pod IP.
#
# The base image is pinned by exact tag. Production builds should also pin it by digest, e.g.
#   FROM python:3.11.14-slim-bookworm@sha256:<digest>
# (get the digest with `docker buildx imagetools inspect python:3.11.14-slim-bookworm`), and let a
# bot such as Renovate/Dependabot bump tag and digest together.

# BASE_IMAGE: both stages' base. The official Python image unless given, e.g.
#   podman build --build-arg BASE_IMAGE=localhost/python-standin:3.11 .
# (the image test, tests/image/, builds such a stand-in from Debian's packages where no registry is
# reachable). Any base with `python` (3.11+, with venv) on PATH, and groupadd/useradd, will do.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# ---- build: install the project and its dependencies into a self-contained venv ----------------
FROM ${BASE_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src
# README.md* is optional (the wheel's long description; a missing readme is only a warning; the
# wildcard keeps the COPY valid without it). requirements/: pip and setuptools (build.txt) and the
# runtime dependencies (runtime.txt), locked with hashes (`scripts/lock` writes them): exactly what
# CI tested, nothing fetched unchecked, then the project itself without resolving anything.
COPY pyproject.toml README.md* ./
COPY requirements/build.txt requirements/runtime.txt ./requirements/
COPY sidecar ./sidecar
# Byte-compile once here: the runtime root filesystem is read-only and PYTHONDONTWRITEBYTECODE=1,
# so nothing could cache .pyc files later (unchecked-hash: valid whatever the files' mtimes).
# pip/setuptools are dropped from the venv: not needed at run time.
RUN /opt/venv/bin/pip install --no-compile --require-hashes -r requirements/build.txt \
 && /opt/venv/bin/pip install --no-compile --require-hashes --no-build-isolation -r requirements/runtime.txt \
 && /opt/venv/bin/pip install --no-compile --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv \
 && /opt/venv/bin/s2-sidecar --help >/dev/null

# ---- runtime: the venv on a clean base, non-root, nothing written to disk ----------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="s2-sidecar" \
      org.opencontainers.image.description="Read S2 streams from any language over localhost gRPC" \
      org.opencontainers.image.licenses="Apache-2.0"

# Fixed numeric UID/GID (65532, the "nonroot" convention) so Kubernetes runAsNonRoot can verify it
# and the Helm chart's runAsUser/runAsGroup match.
RUN groupadd --system --gid 65532 s2sidecar \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin s2sidecar

COPY --from=build /opt/venv /opt/venv

# MALLOC_*: glibc malloc tuned for ~1 MiB buffers: much faster serialization of large gRPC messages
# and reads of large upstream bodies (measured on this project's 2-core machine: 3.2x serializing
# 1 MiB messages, ~2.5x reading 1.4 MB bodies with aiohttp, +10-20% end to end).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_MMAP_THRESHOLD_=4194304 \
    MALLOC_TRIM_THRESHOLD_=67108864 \
    MALLOC_TOP_PAD_=16777216 \
    S2_SIDECAR_ADMIN_LISTEN=0.0.0.0:9090

WORKDIR /
USER 65532:65532
# 50051: gRPC API (loopback by default); 9090: admin HTTP (/healthz, /readyz, /metrics).
EXPOSE 50051 9090
# The process handles SIGTERM itself (health NOT_SERVING, drain, exit within S2_SIDECAR_GRACE_PERIOD).
STOPSIGNAL SIGTERM
# Exec form: s2-sidecar is PID 1 and receives SIGTERM directly (no shell in between).
ENTRYPOINT ["s2-sidecar"]
