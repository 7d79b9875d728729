# lockerhub: `make test` runs every test; `make build` puts the binaries in ./bin.
GO      ?= go
BIN     ?= bin
FUZZTIME ?= 30s

.PHONY: all build test fuzz bench resilience field serve demo clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/lockerhub ./edge-agent

test:
	scripts/test.sh

# Runs every fuzz target (wire decoders, topic parser, broker ACL) for FUZZTIME each.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# Benchmarks against a fresh hub per scenario, the development InfluxDB and Mosquitto, all on
# 127.0.0.1: ingest, burst, broker ceiling, remote unlocks, 10,000 connections, agent footprint;
# results in var/bench/results.{json,md}. Sizes: BENCH_* (see scripts/bench.sh).
bench:
	scripts/bench.sh

# Resilience cases against a fresh hub each, with the suite's own InfluxDB, all on 127.0.0.1:
# InfluxDB outage, hub SIGKILL, connection and wrong-password flood, descriptor exhaustion and
# recovery, concurrent connects of one identity then its revocation, malformed packets, soak.
# Results in var/resilience/results.{json,md} and soak.svg. RESILIENCE_SOAK (10m) sets the
# soak, RESILIENCE_CASES picks cases (see scripts/resilience.sh).
resilience:
	scripts/resilience.sh

# Field trial of the alert rules (issue 16), with the real hub and simulator and the trial's own
# InfluxDB, all on 127.0.0.1: every simulator fault against rules with windows shortened ten
# times (delay from fault to alert and from repair to resolve, against each rule's window),
# then 60 units with people and no faults for an hour at the default rules (false alerts).
# Results in var/field/results.{json,md} (FIELD_OUT). FIELD_DURATION (1h), FIELD_PARTS (faults,quiet):
# see scripts/field.sh.
field:
	scripts/field.sh

# Runs the hub with the documented default configuration.
serve: build
	$(BIN)/lockerhub serve --config configs/lockerhub.yaml

# Starts the development InfluxDB (built the first time), then a hub with a simulated fleet;
# it prints the dashboard's URL and an operator token. Ctrl-C stops it (InfluxDB keeps running).
demo: build
	scripts/influxdb.sh start
	$(BIN)/lockerhub demo --config configs/lockerhub.yaml

clean:
	rm -rf $(BIN)
