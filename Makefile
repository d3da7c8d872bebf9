# metaids: build, test, benchmark.
GO ?= go
BIN := bin/metaids

.PHONY: all build test test-short bench vet fmt quickstart clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/metaids

# The full test suite: formatting, vet, and every package's tests.
test:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 ./...

test-short:
	$(GO) test -short ./...

# Benchmarks, single-threaded as the targets in BENCHMARKS.md are stated.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
