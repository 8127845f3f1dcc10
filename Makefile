# Sluice: the commands a developer needs. Everything runs on a machine with Go, Node and
# npm; the local stand-ins (Azurite, a Cosmos DB stand-in) are npm packages pinned in
# package-lock.json.

GO       ?= go
GOFLAGS  ?=
# The handler for local runs is built for this machine; `make package` builds the
# linux/amd64 binary that is deployed.
HANDLER  := bin/handler
PKGS     := ./...

.PHONY: all build run test test-short vet fuzz fuzz-keep bench package redrive new-function rename send clean

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
	$(GO) build -trimpath -o bin/local ./test/cmd/local
	./bin/local

vet:
	$(GO) vet $(PKGS)

# Everything CI runs: vet, unit tests, the end-to-end and fault suites against the real
# handler binary, the deploy checks, and short fuzz runs.
test: node_modules/.package-lock.json vet
	$(GO) test -count=1 -timeout 60m $(PKGS)
	$(MAKE) fuzz FUZZTIME=$(TEST_FUZZTIME)

test-short: node_modules/.package-lock.json
	$(GO) test -count=1 -short $(PKGS)

FUZZTIME ?= 30s
# The test command's short fuzz runs count executions rather than seconds: Go 1.26's
# timed fuzzing can end a run that found nothing with "context deadline exceeded".
TEST_FUZZTIME ?= 200000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) ./internal/invocation
	$(GO) test -run '^$$' -fuzz '^FuzzJSONString$$' -fuzztime $(FUZZTIME) ./internal/invocation
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/order
	$(GO) test -run '^$$' -fuzz '^FuzzParseHint$$' -fuzztime $(FUZZTIME) ./internal/resilience

FUZZ_TARGETS := invocation:FuzzDecodeRequest invocation:FuzzJSONString order:FuzzParse resilience:FuzzParseHint
# Copies what the fuzzers found from the build cache into testdata, where plain `go test`
# replays it: run `make fuzz fuzz-keep`, then commit internal/*/testdata/fuzz.
fuzz-keep:
	@cache=$$($(GO) env GOCACHE)/fuzz/$$($(GO) list -m); \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; dir=internal/$$pkg/testdata/fuzz/$$fn; \
		mkdir -p $$dir; \
		if [ -d $$cache/internal/$$pkg/$$fn ]; then cp -n $$cache/internal/$$pkg/$$fn/* $$dir/; fi; \
		echo "$$dir: $$(ls $$dir | wc -l) inputs"; \
	done
	$(GO) test -count=1 -run '^Fuzz' ./internal/invocation ./internal/order ./internal/resilience

bench: node_modules/.package-lock.json
	$(GO) run ./test/bench

package:
	$(GO) run ./cmd/package -bin dist/linux-amd64/handler

clean:
	rm -rf bin dist bench-results

# Moves poisoned messages back to their queue once the cause is fixed, e.g.
#   make redrive ARGS="-reason cosmos-unavailable -dry-run"
# (flags: go run ./cmd/redrive -h). Refuses any account but the local emulator without -account.
redrive:
	$(GO) run ./cmd/redrive $(ARGS)

# Turns the template into your app: make rename MODULE=github.com/acme/shop APP=shop
rename:
	$(GO) run ./cmd/rename -module "$(MODULE)" -name "$(APP)" $(ARGS)

# Adds a function with its function.json, Go package, test and registration, e.g.
#   make new-function FUNCTION=audit TRIGGER=queue QUEUE=audit-events
#   make new-function FUNCTION=greet TRIGGER=http ROUTE='greet/{who}' METHODS=get,post
new-function:
	$(GO) run ./cmd/newfunction -name "$(FUNCTION)" -trigger "$(TRIGGER)" \
		$(if $(QUEUE),-queue "$(QUEUE)") $(if $(ROUTE),-route '$(ROUTE)') \
		$(if $(METHODS),-methods "$(METHODS)") $(if $(AUTH),-auth "$(AUTH)") $(ARGS)

# Puts one message on a queue of the local app, base64-encoded as the host reads it:
#   make send QUEUE=audit-events MESSAGE='{"event":"login"}'
send:
	$(GO) run ./cmd/send -queue "$(or $(QUEUE),orders)" '$(MESSAGE)'
