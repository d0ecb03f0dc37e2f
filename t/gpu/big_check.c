/*
 * big_check.c: the CUDA half of `make big-check` (issue 11, point 6): the
 * CUDA backend, run in the CPU emulation (t/gpu/emu), loads a real-width
 * checkpoint (t/make_big_model.py) and runs one decode step; what counts is
 * how many bytes of device memory its weights take against the bytes the
 * checkpoint stores them in (weights kept as stored: within 2 %).
 *
 * Run it with GLM_EMU_DEVICE_BYTES a little above the checkpoint's size
 * (t/big_check.py does): a backend that widens weights then fails to upload
 * them, as it would on a card of that size, instead of taking tens of GB of
 * this machine's memory.  Prints
 *
 *   BIGCHECK backend=cuda-emu weight_bytes=<a> checkpoint_bytes=<b> ratio=<a/b> ok|FAIL
 *
 * where a is the device memory allocated while the weights were uploaded
 * (all of it when the upload succeeded; up to the refusal when it did not,
 * with the refused request named), and b the bytes of every tensor the
 * model binds.  Exit 0 when ok.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend_cuda.h"
#include "glm_emu_profile.h"
#include "model/model.h"

int
main(int argc, char **argv)
{
    glm_backend *be;
    glm_model *m;
    glm_kv_pool kv;
    glm_err err;
    size_t i, n, ck_bytes = 0, in_use, peak, limit, refused, before;
    int32_t id = 1, pos3[3] = { 0, 0, 0 }, seq = 0, kpos = 0, row = 0, block = 0;
    glm_seq_blocks sb = { &block, 1 };
    glm_batch b;
    float *logits;
    double ratio;
    int finite = 1, ok;

    if (argc != 2) {
        fprintf(stderr, "usage: big_check MODEL_DIR (with GLM_EMU_DEVICE_BYTES set)\n");
        return 2;
    }
    be = glm_backend_cuda_create(0, &err);
    if (be == NULL) {
        fprintf(stderr, "big_check: %s\n", err.msg);
        return 2;
    }
    m = glm_model_load(argv[1], be, &err);
    if (m == NULL) {
        fprintf(stderr, "big_check: %s: %s\n", argv[1], err.msg);
        return 2;
    }
    n = glm_checkpoint_count(m->ck);
    for (i = 0; i < n; i++) {
        glm_tensor *t = glm_checkpoint_at(m->ck, i);
        ck_bytes += t->used ? t->nbytes : 0;
    }
    glm_emu_device_bytes(&before, &peak, &limit, &refused);
    fprintf(stderr, "big_check: uploading %.2f GiB of weights to the emulated card (%.2f GiB,"
            " GLM_EMU_DEVICE_BYTES)\n", ck_bytes / 1073741824.0, limit / 1073741824.0);
    glm_emu_weights_mark(1);
    if (glm_backend_cuda_upload_weights(be, m->ck, &err) != 0) {
        glm_emu_weights_mark(0);
        glm_emu_device_bytes(&in_use, &peak, &limit, &refused);
        printf("BIGCHECK backend=cuda-emu weight_bytes=%zu checkpoint_bytes=%zu ratio=%.4f FAIL"
               " (upload incomplete, so the ratio is a lower bound: a request for %zu more"
               " bytes was refused by the %zu-byte card: %s)\n", peak - before, ck_bytes,
               (double) (peak - before) / (double) ck_bytes, refused, limit, err.msg);
        return 1;
    }
    glm_emu_weights_mark(0);
    glm_emu_device_bytes(&in_use, &peak, &limit, &refused);
    ratio = (double) (in_use - before) / (double) ck_bytes;

    /* one decode step: token 1 at position 0 */
    if (glm_kv_pool_init(&kv, m, 1, 16, &err) != 0) {
        fprintf(stderr, "big_check: %s\n", err.msg);
        return 1;
    }
    memset(&b, 0, sizeof(b));
    b.n_tokens = 1;
    b.ids = &id;
    b.pos3 = pos3;
    b.attn = (glm_attn_batch) { 1, &seq, &kpos, &sb, 1 };
    b.logit_rows = &row;
    b.n_logits = 1;
    logits = malloc((size_t) m->cfg.vocab_size * sizeof(float));
    glm_model_forward(m, &kv, &b, logits);
    for (i = 0; i < (size_t) m->cfg.vocab_size; i++) {
        finite &= isfinite(logits[i]) != 0;
    }
    ok = fabs(ratio - 1.0) <= 0.02 && finite;
    printf("BIGCHECK backend=cuda-emu weight_bytes=%zu checkpoint_bytes=%zu ratio=%.4f %s%s\n",
           in_use - before, ck_bytes, ratio, ok ? "ok" : "FAIL",
           finite ? "" : " (the decode step's logits are not finite)");
    free(logits);
    glm_kv_pool_free(&kv, m);
    glm_backend_cuda_release_weights(be);
    glm_model_free(m);
    be->destroy(be);
    return ok ? 0 : 1;
}
