# Sluice: the commands a developer needs. Everything runs on a machine with Go, Node and
# npm; the local stand-ins (Azurite, a Cosmos DB stand-in) are npm packages pinned in
# package-lock.json.

GO       ?= go
GOFLAGS  ?=
# The handler for local runs is built for this machine; `make package` builds the
# linux/amd64 binary that is deployed.
HANDLER  := bin/handler
PKGS     := ./...

.PHONY: all build run test test-short vet fuzz bench package redrive new-function rename clean

all: build

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(HANDLER): $(shell find handler functions internal -name '*.go' -not -name '*_test.go') go.mod go.sum
	$(GO) build $(GOFLAGS) -trimpath -o $(HANDLER) ./handler

build: $(HANDLER)

# Builds the handler, starts the stand-ins unless real endpoints are configured, and serves
# the app on localhost:7071: through `func start` when Azure Functions Core Tools is
# installed, otherwise through the project's own imitation of the Functions host.
run: build node_modules/.package-lock.json
	$(GO) run ./test/cmd/local

vet:
	$(GO) vet $(PKGS)

# Everything CI runs: vet, unit tests, the end-to-end and fault suites against the real
# handler binary, the deploy checks, and short fuzz runs.
test: node_modules/.package-lock.json vet
	$(GO) test -count=1 -timeout 60m $(PKGS)
	$(MAKE) fuzz FUZZTIME=10s

test-short: node_modules/.package-lock.json
	$(GO) test -count=1 -short $(PKGS)

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) ./internal/invocation
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/order
	$(GO) test -run '^$$' -fuzz '^FuzzParseHint$$' -fuzztime $(FUZZTIME) ./internal/resilience

bench: node_modules/.package-lock.json
	$(GO) run ./test/bench

package:
	$(GO) run ./cmd/package -bin dist/linux-amd64/handler

clean:
	rm -rf bin dist bench-results
