/*
 * ref_common.h: what the reference checks (reference_check.c,
 * vision_check.c) share: reading reference.json-style fields and comparing
 * logits with the reference's top-k entries.
 */
#ifndef GLM_REF_COMMON_H
#define GLM_REF_COMMON_H

#include <math.h>
#include <stdlib.h>
#include <yajl/yajl_tree.h>

#include "model/config.h"

static inline yajl_val
glm_get(yajl_val obj, const char *key)
{
    const char *path[] = { key, NULL };

    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

static inline int
glm_ids_of(yajl_val arr, int32_t **out, int *n)
{
    size_t i;

    *out = NULL;
    *n = 0;
    if (arr == NULL || !YAJL_IS_ARRAY(arr)) {
        return -1;
    }
    *n = (int) arr->u.array.len;
    *out = malloc((arr->u.array.len + 1) * sizeof(int32_t));
    for (i = 0; i < arr->u.array.len; i++) {
        (*out)[i] = (int32_t) YAJL_GET_INTEGER(arr->u.array.values[i]);
    }
    return 0;
}

/* max |ours[id] - ref| over one row's reference top-k entries */
static inline double
glm_topk_diff(const float *row, yajl_val ids, yajl_val vals)
{
    double mx = 0.0, d;
    size_t k;

    for (k = 0; k < ids->u.array.len; k++) {
        long long id = YAJL_GET_INTEGER(ids->u.array.values[k]);
        d = fabs((double) row[id] - YAJL_GET_DOUBLE(vals->u.array.values[k]));
        mx = d > mx ? d : mx;
    }
    return mx;
}

#endif
