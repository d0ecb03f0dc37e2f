/*
 * emu_reads.cpp: the per-load hooks of the profile build (`make gpu-profile`).
 *
 * The profile build compiles kernels/ (as convert.py rewrites them) with
 * -fsanitize=kernel-address and a call threshold of 0: the compiler then
 * calls __asan_loadN_noabort(addr) before every load and
 * __asan_storeN_noabort(addr) before every store, and leaves the runtime to
 * us (there is no libasan in that build).  Loads go to glm_emu_read, which
 * counts the bytes of weight buffers the running launch reads; stores are
 * not counted.  Linked only into the profile binary: the test build uses
 * the real ASan, whose runtime defines these names.
 */
#include <stddef.h>
#include <stdint.h>

#include "glm_emu_profile.h"

extern int glm_emu_loads_hooked;

static struct glm_emu_hooks_on {
    glm_emu_hooks_on() { glm_emu_loads_hooked = 1; }
} hooks_on;

extern "C" {

#define GLM_LOAD(n) \
    void __asan_load##n##_noabort(uintptr_t a) { glm_emu_read((const void *) a, n); } \
    void __asan_store##n##_noabort(uintptr_t a) { (void) a; }

GLM_LOAD(1)
GLM_LOAD(2)
GLM_LOAD(4)
GLM_LOAD(8)
GLM_LOAD(16)

void __asan_loadN_noabort(uintptr_t a, size_t n) { glm_emu_read((const void *) a, n); }
void __asan_storeN_noabort(uintptr_t a, size_t n) { (void) a; (void) n; }
void __asan_handle_no_return(void) {}

}
