# syntax=docker/dockerfile:1
# petra-collector container image.
#   docker build -t petra-collector .
#   docker run --rm -p 127.0.0.1:9865:9865 \
#     -v /etc/petra-collector/config.yaml:/etc/petra-collector/config.yaml:ro \
#     -v /etc/petra-collector/keys:/run/secrets/petra:ro petra-collector
# The config's api_key_file entries then point under /run/secrets/petra/.
# Key files must be readable by uid/gid 65532 (e.g. root:65532, mode 0440).

ARG PYTHON_VERSION=3.12

# ---- build: make a wheel, install it with its dependencies into a venv ------
# With the `fast` extra (uvloop, ISA-L deflate for /metrics): both ship wheels.
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README* LICENSE* ./
COPY collector ./collector
RUN pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv --without-pip /opt/petra-collector \
 && pip --python /opt/petra-collector/bin/python install "$(echo /dist/*.whl)[fast]" \
 && /opt/petra-collector/bin/petra-collector --help >/dev/null

# ---- runtime: the venv on a clean slim Python, no compilers, no pip --------
FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="petra-collector" \
      org.opencontainers.image.description="Prometheus exporter for Petra Security usage and API-key health" \
      org.opencontainers.image.source="https://github.com/petra-collector/petra-collector" \
      org.opencontainers.image.documentation="https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md" \
      org.opencontainers.image.licenses="Apache-2.0"
# The venv's python is a symlink to this image's /usr/local/bin/python3, which
# is why both stages use the same base image.
COPY --from=build /opt/petra-collector /opt/petra-collector
# /var/lib/petra-collector is the state directory (state.path); owned by the
# runtime user, so a named volume mounted there starts out writable too.
RUN python -m pip uninstall --yes --quiet pip \
 && mkdir -p /etc/petra-collector /run/secrets/petra /var/lib/petra-collector \
 && chown 65532:65532 /var/lib/petra-collector \
 && chmod 0700 /var/lib/petra-collector
ENV PATH=/opt/petra-collector/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Not root, and numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 9865
# Plain HTTP, or HTTPS when a web config turns TLS on (/healthz needs no credentials;
# the certificate is not checked: this only asks whether the process answers).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import ssl, urllib.request as u\ntry: u.urlopen('http://127.0.0.1:9865/healthz', timeout=4)\nexcept Exception: u.urlopen('https://127.0.0.1:9865/healthz', timeout=4, context=ssl._create_unverified_context())"]
ENTRYPOINT ["petra-collector"]
CMD ["run", "--config", "/etc/petra-collector/config.yaml", "--listen", "0.0.0.0:9865"]
