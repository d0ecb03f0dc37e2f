/*
 * json.h: the one lookup every reader of yajl trees needs.  yajl_tree_get
 * takes a NULL-terminated path array, which is clumsy for a single key and
 * cannot tell "absent" from "wrong type" by itself; this can.
 */
#ifndef GLM_JSON_H
#define GLM_JSON_H

#include <string.h>
#include <yajl/yajl_tree.h>

/* The member `key` of obj, or NULL when obj is not an object or lacks it
 * (a JSON null member is returned as the null value). */
static inline yajl_val
glm_json_get(yajl_val obj, const char *key)
{
    size_t i;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }
    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }
    return NULL;
}

#endif
