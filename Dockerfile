# syntax=docker/dockerfile:1
# Two images from one build: `api` (the API, migrations and the sweeper; CPU-only PyTorch, because the API
# only loads checkpoints to check them) and `worker` (one Celery worker per GPU; CUDA PyTorch).
#   docker build --target api -t unlearning-api .
#   docker build --target worker -t unlearning-worker .
# Both run the code from /app, next to alembic.ini and migrations/ (service/db.py looks for alembic.ini
# beside the service package; the wheel does not carry it), with the wheel's dependencies installed.

ARG PYTHON_IMAGE=python:3.11-slim
# the torch wheels bring their own CUDA libraries (nvidia-* wheels); the base adds the driver hooks of the
# NVIDIA container runtime and refuses to start on a driver older than CUDA 12.4
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-base-ubuntu22.04


FROM ${PYTHON_IMAGE} AS builder
# the project wheel: pyproject.toml's dependency list is the one source of what the images install
WORKDIR /src
COPY pyproject.toml README.md ./
COPY unlearning unlearning
COPY service service
COPY worker worker
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .


FROM ${PYTHON_IMAGE} AS api
# more packages for the deployment, e.g. gcsfs for UNLEARN_STORAGE_URL=gs://... (s3fs is a dependency)
ARG EXTRA_PACKAGES=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=builder /wheels /tmp/wheels
# torch from the CPU index first (PyPI's Linux wheels are the CUDA build, several GB); the project's own
# install then finds torch satisfied and takes the rest from PyPI. The project itself runs from /app.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4" "torchvision>=0.19" \
 && pip install --extra-index-url https://download.pytorch.org/whl/cpu /tmp/wheels/*.whl ${EXTRA_PACKAGES} \
 && pip uninstall --yes unlearning-service \
 && rm -rf /tmp/wheels
# the same uid in both images: the api and the workers share the checkpoints volume
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin unlearning \
 && mkdir -p /srv/checkpoints /srv/data \
 && chown unlearning:unlearning /srv/checkpoints /srv/data
WORKDIR /app
COPY alembic.ini pyproject.toml ./
COPY migrations migrations
COPY unlearning unlearning
COPY service service
COPY worker worker
ENV PYTHONPATH=/app \
    UNLEARN_STORAGE_URL=/srv/checkpoints \
    UNLEARN_DATA_ROOT=/srv/data
USER unlearning
EXPOSE 8000
CMD ["python", "-m", "service", "run", "--host", "0.0.0.0", "--port", "8000", "--no-demo"]


FROM ${CUDA_IMAGE} AS worker
# the CUDA build of torch matching the base image; override for another CUDA (e.g. cu126)
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
ARG EXTRA_PACKAGES=""
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Ubuntu 22.04 ships Python 3.11 (universe) beside its default 3.10; a venv makes it `python`
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv
COPY --from=builder /wheels /tmp/wheels
# torch from its CUDA index alone, so pip cannot prefer a newer PyPI build made for another CUDA
RUN pip install --index-url ${TORCH_INDEX_URL} "torch>=2.4" "torchvision>=0.19" \
 && pip install /tmp/wheels/*.whl ${EXTRA_PACKAGES} \
 && pip uninstall --yes unlearning-service \
 && rm -rf /tmp/wheels
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin unlearning \
 && mkdir -p /srv/checkpoints /srv/data \
 && chown unlearning:unlearning /srv/checkpoints /srv/data
WORKDIR /app
COPY alembic.ini pyproject.toml ./
COPY migrations migrations
COPY unlearning unlearning
COPY service service
COPY worker worker
ENV PYTHONPATH=/app \
    UNLEARN_STORAGE_URL=/srv/checkpoints \
    UNLEARN_DATA_ROOT=/srv/data \
    CUDA_VISIBLE_DEVICES=0
USER unlearning
# one process per GPU: concurrency 1, and the container is given one GPU
CMD ["celery", "--app", "worker.celery_app", "worker", "--queues", "gpu", "--concurrency", "1", "--pool", "prefork", \
     "--hostname", "gpu@%h", "--loglevel", "INFO"]
