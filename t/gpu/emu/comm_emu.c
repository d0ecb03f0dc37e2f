/*
 * comm_emu.c: the CUDA backend's communicator in the CPU emulation
 * (t/gpu/emu): the shared-memory one (engine/parallel/comm_shm.c) standing
 * in for NCCL, which needs one real GPU per rank.
 *
 * It is sound here because the emulator's device memory is host memory and
 * its streams are synchronous: when a rank calls a collective, every op it
 * enqueued before has run, so comm_shm.c can read the ranks' device
 * buffers directly, and it sums BF16 activations in fp32 and rounds once,
 * deterministically for a given number of ranks.  What it cannot show is
 * NCCL itself: its ring order of summation, P2P transfers, and overlap of
 * the collectives with the streams' other work.
 */
#include "parallel/comm.h"

int
glm_comm_nccl_create(int size, const int *devices, void *const *streams, glm_comm **out,
    glm_err *err)
{
    (void) devices;
    (void) streams;
    return glm_comm_shm_create(size, out, err);
}
