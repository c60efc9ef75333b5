// shim.h declares the C interface of the dist package's C++ shim over
// libtorch's c10d (shim.cc). Every function that can fail returns NULL on
// success or a malloc'd error message the caller frees. Tensors are
// torch::Tensor* handles, as gotch's libtch passes them.
#ifndef THINKGEN_DIST_SHIM_H
#define THINKGEN_DIST_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *tg_group;
typedef void *tg_tensor;
typedef void *tg_store;

// tg_store_new serves a TCPStore on port (0: a free one) of every
// interface, for groups whose ranks all connect to it; *port_out is the
// port it listens on.
char *tg_store_new(int port, tg_store *out, int *port_out);
// tg_store_free stops serving the store.
void tg_store_free(tg_store s);

// tg_group_new rendezvouses through a TCPStore at host:port (rank 0 hosts
// it unless hosted is set: another process serves it, tg_store_new) under
// key prefix within join_ms, and creates the backend (0 = Gloo, 1 = NCCL)
// whose collectives time out after timeout_ms.
char *tg_group_new(const char *host, int port, int world, int rank,
                   int hosted, int64_t join_ms, int64_t timeout_ms,
                   const char *prefix, int backend, tg_group *out);
// tg_group_free destroys the backend and the store.
void tg_group_free(tg_group g);
// tg_group_has_nccl reports whether the shim was built with ProcessGroupNCCL.
int tg_group_has_nccl(void);

// tg_allreduce_sum sums each tensor over the ranks, in place; tensors of
// one dtype and device travel in one flat buffer.
char *tg_allreduce_sum(tg_group g, tg_tensor *ts, int n, int64_t timeout_ms);
// tg_broadcast copies root's tensors into every rank's, in place.
char *tg_broadcast(tg_group g, tg_tensor *ts, int n, int root,
                   int64_t timeout_ms);
// tg_allgather writes world new tensor handles into out: rank i's t.
char *tg_allgather(tg_group g, tg_tensor t, tg_tensor *out,
                   int64_t timeout_ms);
// tg_barrier returns when every rank has called it.
char *tg_barrier(tg_group g, int64_t timeout_ms);

// tg_release_grads drops each tensor's gradient (zero_grad(set_to_none)).
char *tg_release_grads(tg_tensor *ts, int n);

#ifdef __cplusplus
}
#endif

#endif
