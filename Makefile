# lockerhub: `make test` runs every test; `make build` puts the binaries in ./bin.
GO      ?= go
BIN     ?= bin
FUZZTIME ?= 30s

.PHONY: all build test fuzz serve demo clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/lockerhub ./edge-agent

test:
	scripts/test.sh

# Runs every fuzz target (wire decoders, topic parser, broker ACL) for FUZZTIME each.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

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
