# syntax=docker/dockerfile:1.7
#
# One Dockerfile, one target per component (`make image` builds all four):
#
#   docker build --target api      -t batch-translate-api:<version> .       HTTP API (CPU)
#   docker build --target worker   -t batch-translate-worker:<version> .    translation worker: CUDA 12 + cuDNN 9 + CTranslate2
#   docker build --target delivery -t batch-translate-delivery:<version> .  delivery worker (CPU)
#   docker build --target retrain  -t batch-translate-retrain:<version> .   retrain job: torch + transformers
#
# Every image carries the same CPython (a relocatable python-build-standalone build installed by uv), a virtual
# environment with only its component's extra, and runs as the non-root user 10001 (the chart's runAsUser).
# torch and transformers are in the retrain image only.

ARG PYTHON_VERSION=3.11
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.8.14
ARG DEBIAN_IMAGE=debian:bookworm-slim
# CTranslate2 4.x wheels run on CUDA 12: they load libcuda.so.1 (the driver, mounted by the NVIDIA runtime) and
# libcublas.so.12 at run time (4.8.5 loads nothing else); releases from 4.5 on were reported to want cuDNN 9 for
# convolutional models. The "cudnn-runtime" image carries cuBLAS 12 and cuDNN 9, covering every 4.x the worker
# extra allows; with ctranslate2 pinned to >=4.8 the smaller "runtime" image (cuBLAS only) would do.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------------------------------------
# build: the interpreter, and one virtual environment per extra
# ---------------------------------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build
ARG PYTHON_VERSION
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_PYTHON=${PYTHON_VERSION} \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN uv python install ${PYTHON_VERSION}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jobs/ jobs/
COPY webhook_api/ webhook_api/
COPY worker/ worker/
COPY retrain/ retrain/

FROM build AS build-api
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/venv \
 && uv pip install --python /opt/venv/bin/python ".[api]"

FROM build AS build-worker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/venv \
 && uv pip install --python /opt/venv/bin/python ".[worker]"

FROM build AS build-retrain
# cpu: the CPU torch wheel (no CUDA libraries in the image). For GPU retraining build with e.g.
# --build-arg TORCH_BACKEND=cu128: torch's CUDA wheels bring their own CUDA libraries.
ARG TORCH_BACKEND=cpu
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/venv \
 && uv pip install --python /opt/venv/bin/python --torch-backend ${TORCH_BACKEND} ".[retrain]"

# ---------------------------------------------------------------------------------------------------------------
# runtime bases: a non-root user and the environment every component shares
# ---------------------------------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime-cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/cache/batch-translate --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 /var/cache/batch-translate
COPY --from=build /opt/python /opt/python
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/var/cache/batch-translate \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/cache/batch-translate

FROM ${CUDA_IMAGE} AS runtime-cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/cache/batch-translate --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 /var/cache/batch-translate
COPY --from=build /opt/python /opt/python
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/var/cache/batch-translate \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/cache/batch-translate

# ---------------------------------------------------------------------------------------------------------------
# component images
# ---------------------------------------------------------------------------------------------------------------
FROM runtime-cpu AS api
COPY --from=build-api /opt/venv /opt/venv
USER 10001:10001
# BT_API_PORT (webhook_api/settings.py ApiSettings.port)
EXPOSE 8000
CMD ["python", "-m", "webhook_api"]

FROM runtime-cuda AS worker
COPY --from=build-worker /opt/venv /opt/venv
USER 10001:10001
# BT_WORKER_METRICS_PORT: /healthz, /readyz, /metrics (worker/settings.py WorkerSettings.metrics_port)
EXPOSE 9100
CMD ["python", "-m", "worker"]

FROM runtime-cpu AS delivery
COPY --from=build-worker /opt/venv /opt/venv
USER 10001:10001
CMD ["python", "-m", "worker.delivery"]

FROM runtime-cpu AS retrain
COPY --from=build-retrain /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["python", "-m", "retrain"]
CMD ["--help"]
