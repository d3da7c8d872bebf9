# metaids: build, test, benchmark, reproduce.
GO ?= go
BIN := bin/metaids
# The commit (with +dirty for uncommitted changes or untracked files) recorded in every result file,
# stamped only in this project's own checkout: an exported tree records none, and
# a tree inside another repository does not take that repository's HEAD.
ifeq ($(shell git rev-parse --show-toplevel 2>/dev/null),$(realpath $(CURDIR)))
COMMIT := $(shell git rev-parse HEAD)$(shell test -z "$$(git status --porcelain)" || echo +dirty)
endif
LDFLAGS := $(if $(COMMIT),-X github.com/metaids/metaids/experiments.BuildCommit=$(COMMIT))
QUICK_OUT ?= results/quick
# Seeds run at once by make reproduce (JOBS=n; the numbers do not depend on it, the throughput
# figures in the summaries do) and by make reproduce-quick.
JOBS ?= 1
QUICK_JOBS ?= 2
QUICK_SET := --seeds 1 --set episodes.train_steps=40 --set episodes.val_every=20 \
	--set episodes.val_episodes=5 --set episodes.test_episodes=20 --set pretrain.epochs=1 \
	--set adversarial.eval_episodes=5 --set adversarial.pgd_steps=2

.PHONY: all build test test-short race bench vet fmt reproduce reproduce-quick kernels cuda-check cuda-device clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/metaids

# The full test suite: formatting, vet, every package's tests, and the quick
# reproduce suite (same code paths as make reproduce, fewer steps).
test:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(MAKE) --no-print-directory reproduce-quick
	$(MAKE) --no-print-directory cuda-check

test-short:
	$(GO) test -short ./...

# The tests under the race detector (needs cgo and a C compiler); CI runs it
# after make test. The race detector slows the experiments tests about tenfold,
# close to go test's default limit of ten minutes a package on two cores.
race:
	$(GO) test -race -short -count=1 -timeout 30m ./...

# Benchmarks, single-threaded as the targets in BENCHMARKS.md are stated.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./...

# The suite behind results/REPORT.md: every learner at 1, 5 and 10 shots on
# NSL-KDD and KDD Cup 99 novel attacks, three seeds. Finished runs are kept;
# FORCE=1 runs everything again; JOBS=2 runs two seeds at once.
reproduce: build
	@start=$$(date +%s); \
	$(BIN) run experiments/reproduce --out results --jobs $(JOBS) $(if $(FORCE),--force) && \
	$(BIN) report results/repro-* --out results/REPORT.md --title "metaids: reproduce suite" \
		--note "make reproduce took $$(( $$(date +%s) - start )) s of wall time on this machine (runs finished earlier are not repeated and not counted)."

reproduce-quick: build
	rm -rf $(QUICK_OUT)
	@echo "reproduce-quick: the reproduce suite, shortened; progress in $(QUICK_OUT).log"
	@$(BIN) run experiments/reproduce experiments/nsl-kdd/every-option.yaml --out $(QUICK_OUT) $(QUICK_SET) --jobs $(QUICK_JOBS) --format csv > /dev/null 2> $(QUICK_OUT).log \
		|| { tail -n 30 $(QUICK_OUT).log; exit 1; }
	$(BIN) report $(QUICK_OUT) --out $(QUICK_OUT)/REPORT.md --title "metaids: reproduce suite (quick)"

# Regenerate the committed PTX and its recorded source hash after editing
# kernels/cuda/kernels.cu (fetches Debian's CUDA 11.8 toolkit on first use).
kernels:
	bash scripts/cuda-check.sh ptx

# Vet and compile the CUDA backend (tag metaids_cuda) without a GPU and run its
# tests on the CPU emulation of the driver; skipped with a message if the CUDA
# toolkit cannot be fetched.
cuda-check:
	bash scripts/cuda-check.sh

# Binaries for a GPU machine in .device/ (see ../shared/GPU.md).
cuda-device:
	BUILD_COMMIT=$(COMMIT) bash scripts/cuda-check.sh device

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin results/quick results/quick.log
