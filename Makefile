# smoldoc - one GNU Makefile for the engine, ingest, store, protocol, daemon,
# clients, tools and tests. `make` builds everything; `make test` runs every
# test that needs no GPU; `make check-gpu` runs CUDA parity and benchmarks.

CC      ?= cc
NVCC    ?= nvcc
BUILD   ?= build
PREFIX  ?= /usr/local
WERROR  ?= -Werror
OPT     ?= -O2
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -Wstrict-prototypes $(WERROR) \
           -D_GNU_SOURCE -MMD -MP -pthread -fopenmp -Iengine -Iingest -Istore -Iprotocol -Itests
PKGS    := jansson sqlite3 poppler-glib libzmq libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
SAN     ?=
CFLAGS  += $(SAN)
LDLIBS  += $(PKG_LIBS) -lm -pthread -fopenmp $(SAN)

# CUDA: on by default when nvcc is found; CUDA=0 turns it off.
CU_SRC := $(wildcard engine/cuda/*.cu)
ifeq ($(origin CUDA), undefined)
CUDA := $(if $(and $(shell command -v $(NVCC) 2>/dev/null),$(CU_SRC)),1,0)
endif
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC) 2>/dev/null)))
NVCCFLAGS ?= -O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -Xcompiler -fPIC,-Wall -Iengine
# The CUDA backend is a plugin, $(BUILD)/libsmoldoc_cuda.so, that the engine
# dlopens only when a device is present: linking cuBLAS into every binary costs
# over a second at each process start. Executables export their symbols
# (-rdynamic) for the plugin to use.
ifeq ($(CUDA),1)
CFLAGS  += -DSD_CUDA=1 -DSD_CUDA_PLUGIN_INSTALLED='"$(PREFIX)/lib/smoldoc/libsmoldoc_cuda.so"'
CU_OBJ  := $(CU_SRC:%.cu=$(BUILD)/%.o)
CUDA_PLUGIN := $(BUILD)/libsmoldoc_cuda.so
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
LDLIBS  += -ldl -rdynamic
endif

ENGINE_SRC   := $(wildcard engine/*.c)
INGEST_SRC   := $(wildcard ingest/*.c)
STORE_SRC    := $(wildcard store/*.c)
PROTOCOL_SRC := $(wildcard protocol/*.c)
DAEMON_SRC   := $(wildcard daemon/*.c)
LIB_SRC      := $(ENGINE_SRC) $(INGEST_SRC) $(STORE_SRC) $(PROTOCOL_SRC)
LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB          := $(BUILD)/libsmoldoc.a

TOOLS   := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/*.c))
CLIENTS := $(patsubst clients/%.c,$(BUILD)/%,$(wildcard clients/*.c))
DAEMON  := $(if $(DAEMON_SRC),$(BUILD)/smoldocd)
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all test bench asan fuzz fuzz-run check-gpu install clean deps demo
all: $(TOOLS) $(CLIENTS) $(DAEMON) $(TESTS) $(CUDA_PLUGIN)

# Objects are rebuilt when the flags change (e.g. CUDA=0 <-> CUDA=1 in one build dir).
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD) && echo '$(CFLAGS) $(CUDA)' | cmp -s - $(FLAGS_STAMP) || echo '$(CFLAGS) $(CUDA)' > $(FLAGS_STAMP))

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/engine/cuda/%.o: engine/cuda/%.cu $(wildcard engine/cuda/*.h engine/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CUDA_PLUGIN): $(CU_OBJ)
	$(CC) -shared -Wl,-soname,libsmoldoc_cuda.so -o $@ $^ $(CUDA_LIBS)

# test_cuda calls the plugin's test hooks directly.
$(BUILD)/tests/test_cuda: tests/test_cuda.c tests/test.h $(LIB) $(CUDA_PLUGIN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(LIB) $(CUDA_PLUGIN) $(LDLIBS) -Wl,-rpath,'$$ORIGIN/..' -o $@

# smolrun's subcommands live in tools/smolrun/*.c (declared in tools/smolrun/cmds.h).
SMOLRUN_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/smolrun/*.c))
$(BUILD)/smolrun: tools/smolrun.c $(SMOLRUN_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itools/smolrun $< $(SMOLRUN_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/%: clients/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/smoldocd: $(DAEMON_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/test.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

test: all
	BUILD=$(BUILD) tests/run.sh

bench: all
	tools/bench.sh

# The main job: smoldocd end to end on a sample contract (MODEL=DIR for the real model).
demo: all
	tools/demo.sh $(if $(MODEL),--model $(MODEL))

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer" SAN="-fsanitize=address,undefined" CUDA=0 all

# fuzz: libFuzzer target for the protocol decoder (clang). fuzz-run fuzzes for
# FUZZ_SECONDS, then merges what it found, minimised, into the kept corpus.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -D_GNU_SOURCE -Iengine -Iprotocol $(shell pkg-config --cflags jansson libzmq)
fuzz: build-fuzz/fuzz_protocol

build-fuzz/fuzz_protocol: tests/fuzz/fuzz_protocol.c $(PROTOCOL_SRC) engine/sd.c $(wildcard protocol/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_protocol.c $(PROTOCOL_SRC) engine/sd.c \
	    $(shell pkg-config --libs jansson libzmq) -o $@

fuzz-run: build-fuzz/fuzz_protocol
	@mkdir -p build-fuzz/corpus_new tests/fuzz/corpus_protocol
	build-fuzz/fuzz_protocol -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
	    -print_final_stats=1 build-fuzz/corpus_new tests/fuzz/corpus_protocol
	rm -rf build-fuzz/corpus_min && mkdir -p build-fuzz/corpus_min
	build-fuzz/fuzz_protocol -merge=1 build-fuzz/corpus_min tests/fuzz/corpus_protocol build-fuzz/corpus_new
	rm -rf tests/fuzz/corpus_protocol && mv build-fuzz/corpus_min tests/fuzz/corpus_protocol
	@du -sh tests/fuzz/corpus_protocol; ls tests/fuzz/corpus_protocol | wc -l

check-gpu:
	tools/check-gpu.sh

deps:
	tools/install-deps.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(TOOLS) $(CLIENTS) $(DAEMON) $(DESTDIR)$(PREFIX)/bin
	$(if $(CUDA_PLUGIN),install -d $(DESTDIR)$(PREFIX)/lib/smoldoc && install -m 755 $(CUDA_PLUGIN) $(DESTDIR)$(PREFIX)/lib/smoldoc)


clean:
	rm -rf $(BUILD) build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
