# hagate as a container image: `hagate serve` (port forward), `hagate connect` (home side of a
# relay) or `hagate relay run` (on a VPS), its state (CA, certificates, hagate.yaml, event log)
# in the volume /data. docs/container.md says how to run each.
#
#   podman build -t hagate .            (or docker build)
#   podman build --build-arg BASE=python:3.12-slim-bookworm -t hagate .
#
# BASE: a Debian image with Python 3.11 to 3.13 and its venv module.
ARG BASE=python:3.13-slim-bookworm

FROM ${BASE} AS build
# PIP_CERT: a CA bundle for pip where a proxy re-signs TLS (mount it with -v at build time)
ARG PIP_CERT
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN python3 -m venv /opt/hagate \
    && /opt/hagate/bin/python -m pip install --no-cache-dir --disable-pip-version-check /src \
    && find /opt/hagate -name __pycache__ -prune -exec rm -rf {} + \
    && /opt/hagate/bin/python -m compileall -q /opt/hagate/lib

FROM ${BASE}
COPY --from=build /opt/hagate /opt/hagate
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin hagate \
    && mkdir -p /data && chown hagate:hagate /data && chmod 0700 /data
ENV PATH=/opt/hagate/bin:$PATH \
    HAGATE_STATE_DIR=/data \
    PYTHONUNBUFFERED=1
USER hagate
WORKDIR /data
VOLUME ["/data"]
# serve's default port; a relay listens on 443 (Linux lets an unprivileged process bind it
# only with net.ipv4.ip_unprivileged_port_start=0, which Docker and Podman set by default)
EXPOSE 8443 443
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["hagate", "health"]
ENTRYPOINT ["hagate"]
CMD ["serve"]
