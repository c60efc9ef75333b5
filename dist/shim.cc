// shim.cc binds the few c10d pieces the dist package uses: a TCPStore
// rendezvous, a ProcessGroupGloo (or, built with the cuda tag, a
// ProcessGroupNCCL), and the collectives all-reduce (sum), broadcast,
// all-gather and barrier. Every entry point catches C++ exceptions and
// returns their message; none lets one cross into Go.
#include "shim.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef THINKGEN_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int world = 0;
};

char *message(const char *what) { return strdup(what); }

// PROTECT runs body and turns any exception into a returned message.
#define PROTECT(body)                                                          \
  try {                                                                        \
    body                                                                       \
  } catch (const c10::Error &e) {                                              \
    return message(e.what_without_backtrace());                                \
  } catch (const std::exception &e) {                                          \
    return message(e.what());                                                  \
  } catch (...) {                                                              \
    return message("unknown C++ exception");                                   \
  }                                                                            \
  return nullptr;

bool loopback(const std::string &host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// device picks the interface Gloo listens on: the loopback when the group
// meets on it, GLOO_SOCKET_IFNAME when set (as torch.distributed does),
// else the address this machine's hostname resolves to.
std::shared_ptr<::gloo::transport::Device> device(const std::string &host) {
  if (loopback(host)) {
    return c10d::ProcessGroupGloo::createDeviceForHostname(host);
  }
  if (const char *ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    if (*ifname) {
      return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
    }
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

std::vector<at::Tensor> tensors(tg_tensor *ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    const at::Tensor &t = *static_cast<torch::Tensor *>(ts[i]);
    TORCH_CHECK(t.defined(), "tensor ", i, " is undefined");
    out.push_back(t);
  }
  return out;
}

// Bucket is the tensors of one dtype and device, moved as one flat buffer.
struct Bucket {
  std::vector<at::Tensor> members;
  at::Tensor flat;
};

std::vector<Bucket> buckets(const std::vector<at::Tensor> &ts) {
  std::vector<Bucket> out;
  for (const auto &t : ts) {
    Bucket *b = nullptr;
    for (auto &c : out) {
      if (c.members[0].scalar_type() == t.scalar_type() &&
          c.members[0].device() == t.device()) {
        b = &c;
        break;
      }
    }
    if (b == nullptr) {
      out.emplace_back();
      b = &out.back();
    }
    b->members.push_back(t);
  }
  for (auto &b : out) {
    if (b.members.size() == 1 && b.members[0].is_contiguous()) {
      b.flat = b.members[0];
      continue;
    }
    std::vector<at::Tensor> flat;
    flat.reserve(b.members.size());
    for (const auto &t : b.members) {
      flat.push_back(t.reshape({-1}));
    }
    b.flat = at::cat(flat);
  }
  return out;
}

// unflatten copies each bucket's flat buffer back into its members.
void unflatten(std::vector<Bucket> &bs) {
  for (auto &b : bs) {
    if (b.flat.is_same(b.members[0])) {
      continue;
    }
    int64_t off = 0;
    for (auto &t : b.members) {
      int64_t n = t.numel();
      t.copy_(b.flat.narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  }
}

// wait waits for every work within one shared deadline.
void wait(std::vector<c10::intrusive_ptr<c10d::Work>> &works,
          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto &w : works) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 1) {
      left = std::chrono::milliseconds(1);
    }
    w->wait(left);
  }
}

// bucketed runs the collective op on each bucket of ts' tensors (op
// takes the bucket's flat buffer and starts the work), waits for every
// work within the timeout and copies the results back into ts.
template <typename Op>
void bucketed(tg_tensor *ts, int n, int64_t timeout_ms, Op op) {
  torch::NoGradGuard no_grad;
  auto bs = buckets(tensors(ts, n));
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto &b : bs) {
    std::vector<at::Tensor> one{b.flat};
    works.push_back(op(one));
  }
  wait(works, std::chrono::milliseconds(timeout_ms));
  unflatten(bs);
}

} // namespace

extern "C" {

int tg_group_has_nccl(void) {
#ifdef THINKGEN_NCCL
  return 1;
#else
  return 0;
#endif
}

char *tg_store_new(int port, tg_store *out, int *port_out) {
  PROTECT({
    *out = nullptr;
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = true;
    so.waitWorkers = false;
    auto *st = new c10::intrusive_ptr<c10d::TCPStore>(
        c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so));
    *port_out = (*st)->getPort();
    *out = st;
  })
}

void tg_store_free(tg_store s) {
  try {
    delete static_cast<c10::intrusive_ptr<c10d::TCPStore> *>(s);
  } catch (...) {
  }
}

char *tg_group_new(const char *host, int port, int world, int rank,
                   int hosted, int64_t join_ms, int64_t timeout_ms,
                   const char *prefix, int backend, tg_group *out) {
  PROTECT({
    *out = nullptr;
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0 && !hosted;
    if (!hosted) {
      so.numWorkers = static_cast<std::size_t>(world);
      so.waitWorkers = true;
    }
    so.timeout = std::chrono::milliseconds(join_ms);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto g = std::make_unique<Group>();
    g->store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    g->world = world;
    if (backend == 0) {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(device(host));
      g->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank,
                                                               world, opts);
    } else {
#ifdef THINKGEN_NCCL
      // NCCL honours the timeout only with blocking waits.
      setenv("NCCL_BLOCKING_WAIT", "1", 0);
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      g->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank,
                                                               world, opts);
#else
      TORCH_CHECK(false, "this binary was built without ProcessGroupNCCL "
                         "(build with DEVICE=cuda)");
#endif
    }
    *out = g.release();
  })
}

void tg_group_free(tg_group g) {
  auto *grp = static_cast<Group *>(g);
  try {
    grp->backend.reset();
    grp->store.reset();
  } catch (...) {
  }
  delete grp;
}

char *tg_allreduce_sum(tg_group g, tg_tensor *ts, int n, int64_t timeout_ms) {
  PROTECT({
    auto *grp = static_cast<Group *>(g);
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    bucketed(ts, n, timeout_ms, [&](std::vector<at::Tensor> &one) {
      return grp->backend->allreduce(one, opts);
    });
  })
}

char *tg_broadcast(tg_group g, tg_tensor *ts, int n, int root,
                   int64_t timeout_ms) {
  PROTECT({
    auto *grp = static_cast<Group *>(g);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    bucketed(ts, n, timeout_ms, [&](std::vector<at::Tensor> &one) {
      return grp->backend->broadcast(one, opts);
    });
  })
}

char *tg_allgather(tg_group g, tg_tensor t, tg_tensor *out,
                   int64_t timeout_ms) {
  PROTECT({
    auto *grp = static_cast<Group *>(g);
    torch::NoGradGuard no_grad;
    at::Tensor in = tensors(&t, 1)[0].contiguous();
    std::vector<std::vector<at::Tensor>> outs(1);
    for (int i = 0; i < grp->world; i++) {
      outs[0].push_back(at::empty_like(in));
    }
    std::vector<at::Tensor> ins{in};
    c10d::AllgatherOptions opts;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    std::vector<c10::intrusive_ptr<c10d::Work>> works{
        grp->backend->allgather(outs, ins, opts)};
    wait(works, std::chrono::milliseconds(timeout_ms));
    for (int i = 0; i < grp->world; i++) {
      out[i] = new torch::Tensor(outs[0][i]);
    }
  })
}

char *tg_barrier(tg_group g, int64_t timeout_ms) {
  PROTECT({
    auto *grp = static_cast<Group *>(g);
    c10d::BarrierOptions opts;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    std::vector<c10::intrusive_ptr<c10d::Work>> works{
        grp->backend->barrier(opts)};
    wait(works, std::chrono::milliseconds(timeout_ms));
  })
}

} // extern "C"

char *tg_release_grads(tg_tensor *ts, int n) {
  PROTECT({
    for (int i = 0; i < n; i++) {
      static_cast<torch::Tensor *>(ts[i])->mutable_grad().reset();
    }
  })
}
