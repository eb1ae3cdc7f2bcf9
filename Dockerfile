# syntax=docker/dockerfile:1
# One image for every Python process of the platform: the goal, progress, reporting and
# notification services (nameko), the outbox relay, the gRPC gateway and `okr migrate`.
# The process is chosen by the command (docker-compose.yml, deploy/k8s/):
#
#   docker build -t okr-platform:0.1.0 .
#   docker run --rm okr-platform:0.1.0 okr migrate
#   docker run --rm okr-platform:0.1.0 nameko run --config services/config.yaml okr_services.goal.service
#   docker run --rm okr-platform:0.1.0 python -m okr_services.relay
#   docker run --rm -p 50051:50051 okr-platform:0.1.0 python -m okr_services.gateway
#
# Configuration comes from environment variables only (README.md, "Configuration").
# Health checks are defined by docker-compose.yml and the Kubernetes manifests, not here.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# The protobuf compiler (grpcio-tools is a dev extra: it lives only in this stage).
COPY requirements/constraints.txt requirements/constraints.txt
RUN python -m venv /opt/protoc \
 && /opt/protoc/bin/pip install -c requirements/constraints.txt grpcio-tools==1.85.1

# Generated code, exactly as `make proto` makes it (shared/okr/v1/*_pb2*.py; only the
# package markers are committed).
COPY protos protos
COPY shared shared
RUN find shared/okr -name '*_pb2*.py*' -delete \
 && /opt/protoc/bin/python -m grpc_tools.protoc -I protos --python_out=shared --pyi_out=shared \
        --grpc_python_out=shared $(find protos -name '*.proto') \
 && test -n "$(find shared/okr -name '*_pb2.py')"

# The project and its pinned runtime dependencies (no dev or bench extras), in a venv
# that the runtime stage copies whole.
COPY pyproject.toml README.md ./
COPY services services
RUN python -m venv /opt/okr \
 && /opt/okr/bin/pip install -c requirements/constraints.txt . \
 && /opt/okr/bin/python -c "import okr.v1, okr_services.gateway.server, okr_cli.main"

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE}
ARG OKR_UID=10001
RUN groupadd --system --gid ${OKR_UID} okr \
 && useradd --system --uid ${OKR_UID} --gid okr --home-dir /app --no-create-home --shell /usr/sbin/nologin okr \
 && mkdir -p /app/services /app/data \
 && chown okr:okr /app/data

COPY --from=build /opt/okr /opt/okr
# nameko's configuration, at the path the Makefile and the docs use
COPY services/config.yaml /app/services/config.yaml

ENV PATH=/opt/okr/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OKR_DATA_DIR=/app/data
WORKDIR /app
USER ${OKR_UID}:${OKR_UID}
# 9464: each process's Prometheus /metrics (OKR_METRICS_PORT; docs/observability.md)
EXPOSE 8000 50051 9464

# No ENTRYPOINT wrapper: the command is the process (PID 1; nameko, the relay and the
# gateway all stop cleanly on SIGTERM). Without a command the image prints the CLI help.
CMD ["okr", "--help"]
