# syntax=docker/dockerfile:1
# petra-collector container image.
#   docker build -t petra-collector .
#   docker run --rm -p 127.0.0.1:9865:9865 \
#     -v /etc/petra-collector/config.yaml:/etc/petra-collector/config.yaml:ro \
#     -v /etc/petra-collector/keys:/run/secrets/petra:ro petra-collector
# The config's api_key_file entries then point under /run/secrets/petra/.
# Key files must be readable by uid/gid 65532 (e.g. root:65532, mode 0440).
#
# Without a registry (docs/operations.md, "Build the image without a registry"):
# BASE_IMAGE is any image with Python >= 3.11 and its venv module (e.g. Debian's
# python3 and python3-venv, imported from an mmdebstrap tarball), wheels/ in the
# build context holds every dependency and setuptools (`pip download`), and
# PIP_INSTALL_OPTIONS=--no-index keeps pip off the network.

ARG PYTHON_VERSION=3.12
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

# ---- build: install the package with its dependencies into a venv ----------
# uvloop and ISA-L (deflate for /metrics) come as dependencies: both ship wheels for
# linux/amd64 and arm64. inotify_simple (key files watched by the kernel, Linux only)
# is pure Python.
FROM ${BASE_IMAGE} AS build
ARG PIP_INSTALL_OPTIONS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# .dockerignore lets in only the package source, its metadata and wheels/.
COPY . ./
# pip comes from a throwaway venv of its own (the base may have no pip at all);
# the runtime venv gets none. wheels/ may be absent: pip then only uses the index.
RUN python3 -m venv /opt/pip \
 && python3 -m venv --without-pip /opt/petra-collector \
 && mkdir -p wheels \
 && /opt/pip/bin/pip --python /opt/petra-collector/bin/python install \
      ${PIP_INSTALL_OPTIONS} --find-links /src/wheels /src \
 && /opt/petra-collector/bin/petra-collector --help >/dev/null

# ---- runtime: the venv on the same base, no compilers, no pip ---------------
FROM ${BASE_IMAGE}
# The venv's python is a symlink to this image's python3, which is why both
# stages use the same base image.
COPY --from=build /opt/petra-collector /opt/petra-collector
# Set by the build (docs/operations.md shows how): the package version, the git
# commit and the build time (RFC 3339), for the labels below. Declared before the
# RUN, which makes new values a new layer there: buildah (podman 4) keys its cache
# of a LABEL on the unexpanded text, and would keep the labels of an older build.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
# /var/lib/petra-collector is the state directory (state.path); owned by the
# runtime user, so a named volume mounted there starts out writable too.
# The base's own pip, where it has one, goes too.
RUN if python3 -m pip --version >/dev/null 2>&1; then \
      python3 -m pip uninstall --yes --quiet pip; \
    fi \
 && mkdir -p /etc/petra-collector /run/secrets/petra /var/lib/petra-collector \
 && chown 65532:65532 /var/lib/petra-collector \
 && chmod 0700 /var/lib/petra-collector
ENV PATH=/opt/petra-collector/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="petra-collector" \
      org.opencontainers.image.description="Prometheus exporter for Petra Security usage and API-key health" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/petra-collector/petra-collector" \
      org.opencontainers.image.documentation="https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md" \
      org.opencontainers.image.licenses="Apache-2.0"
# Not root, and numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 9865
# Plain HTTP, or HTTPS when a web config turns TLS on (/healthz needs no credentials;
# the certificate is not checked: this only asks whether the process answers).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import ssl, urllib.request as u\ntry: u.urlopen('http://127.0.0.1:9865/healthz', timeout=4)\nexcept Exception: u.urlopen('https://127.0.0.1:9865/healthz', timeout=4, context=ssl._create_unverified_context())"]
ENTRYPOINT ["petra-collector"]
CMD ["run", "--config", "/etc/petra-collector/config.yaml", "--web.listen-address", "0.0.0.0:9865"]
