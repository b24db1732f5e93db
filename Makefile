# The two commands a new user runs (README.md):
#   make demo   installs what is missing, builds, and runs Kiln's main job on its defaults
#   make test   installs, builds and passes every test
# Everything else here is a convenience for developers.

PRESET ?= release
BUILD  := build/$(PRESET)
JOBS   ?= $(shell nproc)

.PHONY: all deps build demo test test-asan fuzz bench clean format

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja: CMakeLists.txt CMakePresets.json
	cmake --preset $(PRESET) >/dev/null

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo $(BUILD)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 1500

# ASan + UBSan build (clang) of the unit tests and fuzz corpora.
test-asan: deps
	$(MAKE) PRESET=asan build
	ctest --test-dir build/asan --output-on-failure -j $(JOBS) -LE conformance

# Fuzz each target for FUZZ_SECONDS (default 60) with libFuzzer.
FUZZ_SECONDS ?= 60
fuzz: deps
	$(MAKE) PRESET=asan build
	@scripts/fuzz build/asan $(FUZZ_SECONDS)

bench: build
	@scripts/install-deps --bench
	bench/compare --kiln $(BUILD)/apps/kiln/kiln
	bench/compare --int8 --kiln $(BUILD)/apps/kiln/kiln

clean:
	rm -rf build
