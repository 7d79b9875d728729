# lockerhub: `make test` runs every test; `make build` puts the binaries in ./bin.
GO      ?= go
BIN     ?= bin
FUZZTIME ?= 30s

.PHONY: all build test fuzz serve clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/lockerhub ./edge-agent

test:
	scripts/test.sh

# Runs every wire decoder's fuzz target for FUZZTIME each.
fuzz:
	for target in $$($(GO) test ./fleet/wire -list '^Fuzz' | grep '^Fuzz'); do \
		$(GO) test ./fleet/wire -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# Runs the hub with the documented default configuration.
serve: build
	$(BIN)/lockerhub serve --config configs/lockerhub.yaml

clean:
	rm -rf $(BIN)
