SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Local databases unless the caller points elsewhere (DATABASE_URL, REDIS_URL).
RUN_DATABASE_URL  ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable)
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/tollgate_test?sslmode=disable)
REDIS             ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/0)
# Fuzz budgets are execution counts, not durations: go1.26's fuzz coordinator can fail a
# duration-bounded run with a spurious "context deadline exceeded" (golang/go#75804).
FUZZTIME          ?= 60000x
BIN               := bin/tollgate
# scripts/services.sh installs Node.js here when the system's is older than the e2e clients need.
NODE_BIN          := $(CURDIR)/.tools/node/bin

.PHONY: help
help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/tollgate
	go build -o $(BIN) ./cmd/tollgate

.PHONY: services
services: ## check Go; start (or install) Postgres and Redis, or use DATABASE_URL / REDIS_URL
	scripts/services.sh go postgres redis

# The e2e suite runs `node` from PATH, so a Node.js in .tools comes first.
run test e2e-deps: export PATH := $(NODE_BIN):$(PATH)

.PHONY: run
run: services build ## run the gateway locally with a mock provider (http://127.0.0.1:8080)
	DATABASE_URL='$(RUN_DATABASE_URL)' REDIS_URL='$(REDIS)' TOLLGATE_LOG_FORMAT=text ./$(BIN) dev

.PHONY: e2e-deps
e2e-deps: ## Node.js 20 or later and the SDKs the end-to-end tests drive
	scripts/services.sh node
	cd test/e2e/node && npm ci --no-audit --no-fund --loglevel=error

.PHONY: test
test: services e2e-deps ## run every test: unit, integration (Postgres, Redis), end to end, brief fuzzing
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(REDIS)' go test -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)

.PHONY: fuzz
fuzz: ## run each fuzz target briefly (FUZZTIME executions each)
	go test ./extproc/sse -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME)
	go test ./extproc/openai -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME)
	go test ./extproc/anthropic -run '^$$' -fuzz '^FuzzStreamDecoder$$' -fuzztime $(FUZZTIME)
	go test ./extproc/anthropic -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME)
	go test ./extproc/gemini -run '^$$' -fuzz '^FuzzStreamDecoder$$' -fuzztime $(FUZZTIME)
	go test ./extproc/gemini -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1000x

.PHONY: bench
bench: services ## run the benchmarks with allocation counts
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(REDIS)' go test -run '^$$' -bench . -benchmem ./...

.PHONY: lint
lint: ## go vet and staticcheck (pinned)
	go vet ./...
	go tool staticcheck ./...

.PHONY: fmt
fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')
