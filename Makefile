# ccsd — build, run and test. Needs only Go (see go.mod); the race detector
# also needs a C compiler and is skipped with a note when there is none.

GO       ?= go
BIN      ?= bin/ccsd
FUZZTIME ?= 20s
# Extra flags for "make run", e.g. make run ARGS="--log-level debug".
ARGS     ?=
# bench-load: a second ccsd binary to compare with, and the output directory
# (default: a new temp directory).
BEFORE    ?=
BENCH_OUT ?=

# -race needs cgo, which needs a C compiler.
RACE := $(shell command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

.PHONY: all build run test vet fuzz bench bench-load bench-peer fmt clean

all: build

## build: compile bin/ccsd
build:
	$(GO) build -o $(BIN) ./cmd/ccsd

## run: build, then serve with the defaults (data in ./ccsd-data, listeners on 127.0.0.1)
run: build
	./$(BIN) serve $(ARGS)

## test: go vet, then every test with the race detector
test:
	$(GO) vet ./...
ifeq ($(RACE),)
	@echo "note: no C compiler found ($$($(GO) env CC)); running the tests without -race"
endif
	$(GO) test $(RACE) -count=1 ./...

## fuzz: run every Fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## bench: run every benchmark once
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-load: build, then run every ccsbench scenario against a fresh ccsd
## (temp data dir, loopback, ports 0) and print a summary; BEFORE=path/to/ccsd
## runs each step on that binary too, interleaved, with ratios
bench-load: build
	$(GO) build -o bin/ccsbench ./cmd/ccsbench
	CCSD=$(BIN) CCSBENCH=bin/ccsbench CCSD_BEFORE=$(BEFORE) bench/bench-load.sh $(BENCH_OUT)

## bench-peer: ccsd vs Prosody (installed from Debian once), same work, same run
bench-peer: build
	$(GO) build -o bin/ccsbench ./cmd/ccsbench
	CCSD=$(BIN) CCSBENCH=bin/ccsbench bench/bench-peer.sh $(BENCH_OUT)

## fmt: gofmt every Go file
fmt:
	$(GO) fmt ./...

## clean: remove build output (not ./ccsd-data)
clean:
	rm -rf bin
