# ngx_glm: one Makefile for the engine, its tests and (later) the nginx module.
#
#   make                 glm-engine (+ CUDA objects when nvcc exists; CUDA=0 skips)
#   make test            everything that needs no GPU (ASan/UBSan builds of the tests)
#   make reference-check REF/TOK lines against the committed transformers references
#   make bench           benchmarks, each printing a ratio against a named baseline
#   make fixtures        regenerates t/fixtures with transformers (needs torch; see t/reference)

CC      ?= gcc
NVCC    ?= nvcc
CUDA    ?= $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
PYTHON  ?= python3
OPT     ?= -O2

CPPFLAGS += -D_GNU_SOURCE -Iengine
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -Wshadow \
           -Wstrict-prototypes -pthread -fno-strict-aliasing
LDLIBS  += -lyajl -lpcre2-8 -lm -lpthread
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

ENGINE_MAIN  = engine/main.c
ENGINE_SRCS  = $(filter-out $(ENGINE_MAIN),$(wildcard engine/*.c))
ENGINE_HDRS  = $(wildcard engine/*.h)
ENGINE_OBJS  = $(ENGINE_SRCS:%.c=build/%.o)
ASAN_OBJS    = $(ENGINE_SRCS:%.c=build/asan/%.o)
UNIT_SRCS    = $(wildcard t/unit/test_*.c)
UNIT_BINS    = $(UNIT_SRCS:t/unit/%.c=build/asan/t/%)

CUDA_SRCS    = $(wildcard kernels/*.cu)
CUDA_OBJS    = $(CUDA_SRCS:%.cu=build/%.o)
NVCCFLAGS   ?= -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a \
               -gencode arch=compute_80,code=compute_80

FIXTURES     = glm45-air-tiny glm45-tiny glm45v-tiny

MODEL       ?= t/fixtures/glm45-air-tiny
PROMPT      ?= [gMASK]<sop><|user|>\nHello, who are you?<|assistant|>

.PHONY: all run test unit-test reference-check loader-check bench bench-tokenizer \
        fixtures clean cuda test-gpu
all: build/glm-engine $(if $(filter 1,$(CUDA)),cuda)

build/%.o: %.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -c -o $@ $<

build/glm-engine: build/$(ENGINE_MAIN:.c=.o) $(ENGINE_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/asan/glm-engine: build/asan/$(ENGINE_MAIN:.c=.o) $(ASAN_OBJS)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(LDLIBS)

build/asan/t/%: t/unit/%.c $(ASAN_OBJS) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -o $@ $< $(ASAN_OBJS) $(LDLIBS)

build/t/%: t/unit/%.c $(ENGINE_OBJS) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(ENGINE_OBJS) $(LDLIBS)

# CUDA: compiled wherever nvcc exists, so kernels never rot on CPU-only machines.
cuda: $(CUDA_OBJS)
build/kernels/%.o: kernels/%.cu $(wildcard kernels/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Ikernels -Iengine -c -o $@ $<

# Until the HTTP server lands (nginx module + engine serve), `make run`
# generates from MODEL on the CPU backend, the embedded tiny checkpoint by default.
run: build/glm-engine
	build/glm-engine generate --model $(MODEL) --prompt "$$(printf '$(PROMPT)')" --max-tokens 32

test: build/glm-engine build/asan/glm-engine $(UNIT_BINS) build/t/reference_check \
      $(if $(filter 1,$(CUDA)),cuda)
	@sh t/run_tests.sh

unit-test: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do $$t || exit 1; done

reference-check: build/t/reference_check build/asan/t/test_tokenizer
	@build/t/reference_check $(addprefix t/fixtures/,$(FIXTURES)) >build/ref.out; rc=$$?; \
	  build/asan/t/test_tokenizer t/fixtures/tokenizer >build/tok.out; rc2=$$?; \
	  grep '^REF ' build/ref.out; grep '^TOK ' build/tok.out; [ $$rc -eq 0 ] && [ $$rc2 -eq 0 ]

loader-check: build/asan/glm-engine
	@sh t/loader_errors.sh build/asan/glm-engine

test-gpu:
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	    echo "no GPU tests yet: the CUDA backend is not written"; \
	else echo "SKIPPED: no GPU"; fi

bench: bench-tokenizer

bench-tokenizer: build/glm-engine
	@sh t/bench/bench_tokenizer.sh build/glm-engine

fixtures:
	$(PYTHON) t/reference/make_fixtures.py

clean:
	rm -rf build
