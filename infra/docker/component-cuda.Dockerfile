# The component image (CUDA): the same package on a CUDA runtime, for the training step on GPU
# nodes. Tagged searchrank/components:<package version>-cuda. Build from the repository root:
#   docker build -f infra/docker/component-cuda.Dockerfile -t searchrank/components:<v>-cuda .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BENTOML_DO_NOT_TRACK=true \
    GX_ANALYTICS_ENABLED=false \
    FEAST_USAGE=False \
    HOME=/home/searchrank \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && groupadd --gid 10001 searchrank \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/searchrank searchrank

WORKDIR /opt/searchrank
# The default index's torch 2.13.0 for Linux is the CUDA build.
RUN pip install "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY core ./core
COPY components ./components
COPY pipelines ./pipelines
COPY features ./features
COPY serving ./serving
# The targets of the package's relative symlinks (core/raytrain/k8s/raycluster.yaml,
# features/feature_store.cluster.yaml, features/feature_store.ray.yaml): kustomize owns these
# files, and pip follows the links only if the targets sit at the same relative place.
COPY infra/k8s/base/raycluster.yaml infra/k8s/base/feature_store.yaml ./infra/k8s/base/
COPY infra/k8s/components/ray-features/feature_store.yaml ./infra/k8s/components/ray-features/
# The pipelines extra: kfp, ray, great-expectations and lightgbm, which the components need
# and the Bento does not. The wheel stays in the image: package_service bundles it into every
# Bento it builds (SEARCHRANK_WHEEL), so the Bento installs searchrank from itself.
RUN pip wheel --no-deps --wheel-dir /opt/searchrank/dist . \
    && pip install "$(ls /opt/searchrank/dist/searchrank-*.whl)[pipelines]"
ENV SEARCHRANK_WHEEL=/opt/searchrank/dist

USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["python3"]
