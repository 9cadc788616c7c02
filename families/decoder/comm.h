// The collectives a sharded forward needs. The model code calls these at the points where a
// sharded layer must combine partial results; at world size 1 they are no-ops, so the same
// forward code is the single-device reference and every rank of every plan (rule 6 of
// docs/architecture.md: no `if (world == 1)` copies of a module). The harness implements them over
// c10d process groups.
#pragma once
#include <string>

#include <ATen/ATen.h>

#include "models/fault_hooks.h"
#include "families/decoder/probe.h"

namespace sc {

struct Comm {
  virtual ~Comm() = default;
  // Observation of this rank's forward (probe.h): set by the harness when a run is compared with
  // its reference; null otherwise (then nothing is recorded and no fault hook fires).
  Probe* probe = nullptr;
  // Sum partial outputs over the attention / dense-MLP tensor-parallel group (o_proj, down_proj).
  virtual void all_reduce_tp(at::Tensor& t) {}
  // Sum partial routed-expert outputs over the stage group (EP groups x expert-TP ranks).
  virtual void all_reduce_experts(at::Tensor& t) {}
  // Concatenate vocab-parallel logits shards (last dim) over the tensor-parallel group.
  virtual at::Tensor all_gather_tp_last_dim(const at::Tensor& t) { return t; }
};

// "[4, 64] float": a collective's tensor as mismatch messages name it (the c10d harness and the
// in-process ranks of local_ranks.h print the same text).
std::string tensor_signature(const at::Tensor& t);

// World size 1: every collective is the identity. Shared: never give it a probe.
inline Comm& local_comm() {
  static Comm c;
  return c;
}

// The injected fault of kind k when it hits this rank at the layer being run (fault_hooks.h);
// only observed ranks (a harness comparison) are ever faulted.
inline const faults::Injection* fault(const Comm& comm, faults::Kind k) {
  return comm.probe && faults::active() && comm.probe->sharded ? faults::hit(k, comm.probe->rank, comm.probe->layer)
                                                                : nullptr;
}

// Records `t` at tap `where` when the rank is observed.
inline void tap(Comm& comm, Tap where, const at::Tensor& t) {
  if (comm.probe) comm.probe->record(where, t);
}

}  // namespace sc
