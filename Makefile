# OKR platform — every set-up, run, test and benchmark step.
# `make run` and `make test` are the README's two commands; both set up what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

PROTOS     := $(shell find protos -name '*.proto')
PROTO_OUT  := shared/okr
PROTO_STAMP := $(PROTO_OUT)/.generated

export OKR_DATA_DIR ?= $(CURDIR)/data

.PHONY: install proto run demo test test-unit migrate services relay gateway browser screenshot bench bench-eventstore bench-kr-load bench-bus bench-reporting bench-e2e bench-appends clean

## install: create $(VENV) and install the pinned dependencies and the project
install: $(STAMP) $(PROTO_STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev,bench]'
	touch $@

## proto: generate Python code from protos/ into shared/okr (never edit it by hand;
## only the package markers shared/okr/__init__.py and shared/okr/v1/__init__.py are committed)
proto: $(PROTO_STAMP)

$(PROTO_STAMP): $(PROTOS) $(STAMP)
	find $(PROTO_OUT) -name '*_pb2*.py*' -delete
	$(PY) -m grpc_tools.protoc -I protos --python_out=shared --pyi_out=shared --grpc_python_out=shared $(PROTOS)
	touch $@

## run: the whole suite on SQLite under OKR_DATA_DIR (services, relay, gateway; a demo company on a new folder)
run: install
	$(BIN)/python -m okr_services.run

## demo: the event store alone, end to end on SQLite (no broker needed)
demo: install
	$(BIN)/okr store-demo --data-dir $(OKR_DATA_DIR)

## browser: Debian's Chromium for the kanban page tests (needs root; skipped when present)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## screenshot: docs/img/board.png — starts the suite as `make run` does (temporary data, free ports, the
## RabbitMQ at AMQP_URI), photographs /board/demo in Debian's Chromium (`make browser`), stops it
screenshot: install
	$(PY) scripts/screenshot_board.py

## test: the whole test suite (needs RabbitMQ and PostgreSQL; `docker compose up -d` gives both)
test: install
	$(BIN)/pytest

## test-unit: only the tests that need no server
test-unit: install
	$(BIN)/pytest tests/unit

## services: run the goal, progress, reporting, notification and directory services (nameko) on OKR_DATABASE_URL and AMQP_URI
## (the board: http://localhost:8000/board/<tenant>; WEB_SERVER_ADDRESS changes the port)
services: install
	$(BIN)/okr migrate
	$(BIN)/nameko run --config services/config.yaml okr_services.goal.service okr_services.progress.service \
		okr_services.reporting.service okr_services.notification.service okr_services.directory.service

## gateway: the public gRPC API (OKR_GATEWAY_ADDRESS, default 0.0.0.0:50051) in front of the services
gateway: install
	$(BIN)/python -m okr_services.gateway

## migrate: create or upgrade the event store schema at OKR_DATABASE_URL
migrate: install
	$(BIN)/okr migrate

## bench-eventstore: event store throughput on SQLite and PostgreSQL vs pyeventsourcing
bench-eventstore: install
	$(PY) bench/eventstore.py

## bench-kr-load: p50/p99 of loading a key result whose stream holds 1,000 events (target p99 <= 5 ms)
bench-kr-load: install
	$(PY) bench/kr_load.py

## bench-appends: concurrent appends of one process on PostgreSQL, group commit on vs off (ADR 0020)
bench-appends: install
	$(PY) bench/concurrent_appends.py

## bench-bus: outbox relay throughput (SQLite, PostgreSQL) beside raw kombu / py-amqp publish loops, and latency
bench-bus: install
	$(PY) bench/bus.py

## relay: run the outbox relay (one active per database; start several for a hot standby)
relay: install
	$(BIN)/okr migrate
	$(PY) -m okr_services.relay

## bench-reporting: read-model rebuild over 1,000,000 events (SQLite, PostgreSQL) beside a raw scan; as-of board; board p50/p99
bench-reporting: install
	$(PY) bench/reporting.py

## bench-e2e: check-ins through the gRPC gateway until visible on the board, 200/s for 60 s, every service on this machine; vs a bare grpcio echo server
bench-e2e: install
	$(PY) bench/e2e.py

bench: bench-eventstore bench-kr-load bench-bus bench-reporting bench-e2e bench-appends

clean:
	rm -rf $(VENV) $(PROTO_STAMP) .pytest_cache
	find $(PROTO_OUT) -name '*_pb2*.py*' -delete
