/*
 * cpu_kernels.c: which build of the CPU kernels this CPU runs (see
 * cpu_kernels.h).  Chosen once per backend from cpuid: the builds differ
 * only in summation order, and a process must not mix them.
 */
#include "cpu_kernels.h"

#include <string.h>

static int
glm_cpu_has(const char *isa)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0) {
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")
               && __builtin_cpu_supports("fma");
    }
    if (strcmp(isa, "avx2") == 0) {
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
#endif
    return strcmp(isa, "generic") == 0;
}

const glm_cpu_kernels *
glm_cpu_kernels_named(const char *name)
{
    static const glm_cpu_kernels *all[] = {
        &glm_cpu_kernels_avx512, &glm_cpu_kernels_avx2, &glm_cpu_kernels_generic,
    };
    size_t i;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (all[i]->name != NULL && strcmp(all[i]->name, name) == 0 && glm_cpu_has(name)) {
            return all[i];
        }
    }
    return NULL;
}

const glm_cpu_kernels *
glm_cpu_kernels_select(void)
{
    static const char *order[] = { "avx512", "avx2", "generic" };
    const char *want = getenv("GLM_CPU_ISA");
    const glm_cpu_kernels *k;
    size_t i, from = 0;

    /* GLM_CPU_ISA names the best build to consider: a lower one for tests
     * and comparisons, never one the CPU lacks */
    for (i = 0; want != NULL && i < sizeof(order) / sizeof(order[0]); i++) {
        if (strcmp(want, order[i]) == 0) {
            from = i;
        }
    }
    for (i = from; i < sizeof(order) / sizeof(order[0]); i++) {
        k = glm_cpu_kernels_named(order[i]);
        if (k != NULL) {
            return k;
        }
    }
    return &glm_cpu_kernels_generic;
}
