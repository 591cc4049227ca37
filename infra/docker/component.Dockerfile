# The component image (CPU): the one base image of every searchrank KFP component, tagged
# searchrank/components:<package version> (searchrank.core.names.COMPONENT_IMAGE).
# Build from the repository root:
#   docker build -f infra/docker/component.Dockerfile -t searchrank/components:$(python -c \
#     'from importlib.metadata import version; print(version("searchrank"))') .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BENTOML_DO_NOT_TRACK=true \
    GX_ANALYTICS_ENABLED=false \
    FEAST_USAGE=False \
    HOME=/home/searchrank

RUN groupadd --gid 10001 searchrank \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/searchrank searchrank

WORKDIR /opt/searchrank
# torch first, pinned: an unpinned resolve pulls a newer build. TORCH_INDEX_URL names the index
# of PyTorch's CPU wheels (your mirror of it); without it pip takes the default index's build.
ARG TORCH_INDEX_URL=""
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==2.13.0"; \
    fi
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
