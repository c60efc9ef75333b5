# thinkgen — build, run and test. Everything a fresh machine needs is set up
# by these targets; nothing has to be installed by hand.
#
#   make run    the main job (doctor + toolchain self-test for now)
#   make test   every test (unit + integration)
#
# DEVICE=cuda LIBTORCH=/path/to/libtorch make build  builds against a CUDA
# libtorch 2.1.0 instead of the CPU wheel (see README.md).

SHELL   := /bin/bash
GO      ?= go
DEVICE  ?= cpu
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Long enough for the libtorch-backed tests on 2 cores; far below CI's limit.
TEST_TIMEOUT ?= 25m

export DEVICE LIBTORCH

# A CUDA build compiles the dist package's ProcessGroupNCCL path too.
ifeq ($(DEVICE),cuda)
export GOFLAGS := $(strip $(GOFLAGS) -tags=cuda)
endif

.PHONY: all setup build run test test-short vet fmt clean distclean pyenv bench image cuda-check

all: build

# setup prepares third_party/libtorch and the patched third_party/gotch,
# and installs Debian's gloo headers (once) for the dist package's c10d
# shim. It is a no-op (well under a second) when all are up to date.
setup:
	@bash scripts/setup-libtorch.sh
	@bash scripts/gloo.sh

build: setup
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/thinkgen ./cmd/thinkgen

# run is the main job: SepGRPO on the tiny configuration from base/tiny
# (16 steps of stage 4, then 4 of stage 5), then the per-stage table. Its
# evaluation scores the scenarios the stages train (reasoning and
# composition, 100 held-out rows each, thinking mode, the out-of-
# distribution split): a gain of 0.05 needs that many rows for a 95%
# interval of about ±0.07 (docs/results.md, "make run").
run: build
	bin/thinkgen doctor
	OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE bin/thinkgen train --config configs/tiny.yaml --run make-run-$$(date +%Y%m%d-%H%M%S) \
		--eval-rows 200 --set 'eval.scenarios=[reasoning,composition]' --set 'eval.modes=[think]' --set 'eval.splits=[eval]'

vet: setup
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# pyenv creates (once) the test-only Python venv and prints its python.
pyenv:
	@bash scripts/setup-pyenv.sh

# Tests that compare against Python references (transformers, diffusers, pyarrow) read
# the venv's interpreter from THINKGEN_PYTHON (the Qwen3-VL parity test reads a second
# venv with a newer torch and transformers from THINKGEN_VL_PYTHON, made by
# scripts/setup-pyenv.sh vl); the test of thinkgen serve drives it
# with the official OpenAI client from the small venv of scripts/setup-toolenv.sh openai
# (THINKGEN_OPENAI_PYTHON). go test runs two packages at a
# time on two cores; libtorch's OpenMP pool spin-waits when oversubscribed
# (measured: 20x slower), so tests run libtorch on one thread each.
# scripts/minio.sh builds the pinned MinIO server once (cached), starts it on
# 127.0.0.1 with fresh credentials for the storage tests, and stops it by PID.
# scripts/chromium.sh installs Debian's chromium once (apt-get, as root) for
# the test that renders a run's HTML report headless, and prints its path.
# The image test (package image) runs when `make image` has built the
# image: scripts/image.sh refresh puts the new bin/thinkgen into it and
# prints its root filesystem; without an image it prints nothing and the
# test is skipped. scripts/setup-toolenv.sh mlflow creates (once) a small venv
# with MLflow, apart from the large test venv, whose python the tracking
# test (cmd/thinkgen/mlflow_test.go) reads from THINKGEN_MLFLOW_PYTHON to
# run `mlflow server` on loopback and MLflow's client.
test: build vet
	KUBE=$$(bash scripts/kube-assets.sh) && CHROMIUM=$$(bash scripts/chromium.sh) && IMAGE=$$(bash scripts/image.sh refresh bin/thinkgen) && KUBEBUILDER_ASSETS=$$KUBE THINKGEN_CHROMIUM=$$CHROMIUM THINKGEN_IMAGE=$$IMAGE THINKGEN_PYTHON=$$(bash scripts/setup-pyenv.sh) THINKGEN_VL_PYTHON=$$(bash scripts/setup-pyenv.sh vl) THINKGEN_OPENAI_PYTHON=$$(bash scripts/setup-toolenv.sh openai) THINKGEN_MLFLOW_PYTHON=$$(bash scripts/setup-toolenv.sh mlflow) OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE bash scripts/minio.sh run bash scripts/ray.sh run $(GO) test -timeout $(TEST_TIMEOUT) ./... && GO=$(GO) bash scripts/fuzz.sh

# image builds the CPU image of image/Dockerfile without pulling any base
# image: Debian packages (mmdebstrap), Ray's PyPI wheels, libtorch's
# libraries and bin/thinkgen, as an OCI image layout (umoci) in
# ~/.cache/thinkgen/image/oci, tag cpu (scripts/image.sh; needs root).
# It prints the unpacked root filesystem, which `make test` then tests.
image: build
	bash scripts/image.sh build bin/thinkgen

# cuda-check compiles and links the dist package's ProcessGroupNCCL half
# (-tags cuda) against libtorch 2.1.0's CUDA libraries assembled from PyPI
# wheels in ~/.cache/thinkgen (about 1 GB once); nothing of it runs, for
# want of a GPU (docs/scale.md, "The CUDA build"). Not part of `make test`.
cuda-check: setup
	@bash scripts/cuda-compile-check.sh

# bench runs the Go benchmarks with libtorch on both cores (BENCHMARKS.md).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./model/ ./tokenizer/

test-short: setup
	$(GO) test -short ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# distclean also removes the unpacked libtorch and the gotch copy (the
# downloaded wheels stay in ~/.cache/thinkgen).
distclean: clean
	rm -rf third_party
