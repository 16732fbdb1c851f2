# The fleet image: the agent (`fleet agent run`), the hub (`fleet hub serve`) and the CLI.
#
#   make image                 # builds kustomize and helm from source, as make k8s-bin does
#   make image TOOLS=cache     # copies them from ~/.cache/fleet/bin instead (no Go download)
#
# kustomize and helm are pinned to the versions in fleet/localkube/toolchain.py (the one
# place they are written; `make image` passes them in) and built the same way:
# `go install -trimpath` through the Go module proxy. They go on PATH, where fleet looks.

ARG PYTHON_VERSION=3.11
ARG GO_VERSION=1.26
ARG TOOLS=build

FROM golang:${GO_VERSION}-bookworm AS tools-build
ARG KUSTOMIZE_VERSION
ARG HELM_VERSION
ENV GOFLAGS=-buildvcs=false CGO_ENABLED=0
RUN test -n "${KUSTOMIZE_VERSION}" && test -n "${HELM_VERSION}" \
 && GOBIN=/out go install -trimpath -ldflags "-s -w" \
        sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION} \
 && GOBIN=/out go install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
        helm.sh/helm/v3/cmd/helm@${HELM_VERSION}

# `make image TOOLS=cache` stages the cached kustomize and helm binaries here.
FROM scratch AS tools-cache
COPY .image-tools/ /out/

FROM tools-${TOOLS} AS tools

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fleet/ fleet/
COPY agent/ agent/
COPY hub/ hub/
RUN pip install --no-cache-dir --prefix=/install .

FROM python:${PYTHON_VERSION}-slim
ENV FLEET_CACHE_DIR=/opt/fleet \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/fleet
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 fleet \
 && useradd --uid 65532 --gid 65532 --home-dir /home/fleet --create-home fleet
COPY --from=build /install /usr/local
COPY --from=tools /out/ /usr/local/bin/
USER 65532:65532
WORKDIR /home/fleet
EXPOSE 9797
ENTRYPOINT ["fleet"]
CMD ["--help"]
