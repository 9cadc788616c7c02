// Rank launching and checked collectives over real c10d process groups.
//
// Two ways to start N ranks:
//   A. run_ranks(N, fn, opts): N threads in this process, one c10d::HashStore shared by all, each
//      thread with its own ProcessGroupGloo (or ProcessGroupNCCL on cuda:<rank>). This is how
//      PyTorch's own C++ c10d tests simulate ranks; it is what the tests and `--simulate` use.
//   B. run_env_rank(fn, opts): one rank per process, as started by torchrun: RANK, WORLD_SIZE,
//      LOCAL_RANK, MASTER_ADDR, MASTER_PORT; the ranks meet through a c10d::TCPStore that rank 0
//      serves (or torchrun's agent store when TORCHELASTIC_USE_AGENT_STORE=True).
//
// Failure handling. A rank that throws must not hang the others:
//   - it publishes its error in the store ("sc/failed", first one wins) and then destroys its
//     process groups at once, which closes its sockets and releases peers blocked on it in Gloo;
//   - every checked collective waits for its peers by polling the store, so a peer that failed,
//     returned without joining, or never arrives turns into a clean exception (PeerFailed,
//     CollectiveError, CollectiveTimeout after opts.timeout) on every rank;
//   - a watchdog makes run_ranks return at most opts.timeout + opts.grace after the first failure
//     (or after opts.run_timeout when set) even when a thread is stuck in non-collective code: such a
//     thread is detached and reported as hung. A detached thread still owns its process group and
//     may run on, so the process should exit soon after run_ranks reports a hung rank.
//   - every RankOutcome names the rank that failed first and its error.
//
// Shape checking. Gloo aborts the whole process (gloo::EnforceNotMet on its I/O thread) when
// ranks pass different sizes to one collective. With opts.check_shapes (default) every wrapper
// first exchanges a signature (op, root, shape, dtype) through the store, keyed by group name and a
// per-group call number, and throws CollectiveMismatch naming every rank's shape instead.
//
// Versions. Builds against LibTorch 1.13 (Debian, CPU, Gloo) and 2.x (CUDA, NCCL). In 2.x the
// concrete process groups derive from c10d::Backend rather than c10d::ProcessGroup, so the handle
// type is CommBackend (= c10d::ProcessGroup on 1.x, c10d::Backend on 2.x); the methods used here
// (allreduce, allgather, broadcast, send, recv, barrier, getRank, getSize) are the same in both.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#include "models/errors.h"

namespace sc {

#if TORCH_VERSION_MAJOR >= 2
using CommBackend = c10d::Backend;
#else
using CommBackend = c10d::ProcessGroup;
#endif
using CommPtr = c10::intrusive_ptr<CommBackend>;
using StorePtr = c10::intrusive_ptr<c10d::Store>;

// ---- errors ---------------------------------------------------------------------------------

// A collective could not run: base of the three below; also thrown for backend (Gloo / NCCL)
// failures, with the collective's name, group and call number prefixed to the backend's message.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Ranks passed different ops, shapes, dtypes or roots to one collective (or send vs recv).
class CollectiveMismatch : public CollectiveError {
 public:
  using CollectiveError::CollectiveError;
};
// Peers did not arrive within LaunchOptions::timeout.
class CollectiveTimeout : public CollectiveError {
 public:
  using CollectiveError::CollectiveError;
};
// The store the ranks meet through failed (its server went away, the connection broke, or it
// did not answer within LaunchOptions::timeout): "lost the TCPStore at host:port (served by rank
// 0) in all_reduce (group 'world', call #3): <the store's error>".
class StoreError : public CollectiveError {
 public:
  using CollectiveError::CollectiveError;
};
// Another rank failed first; this rank stopped instead of waiting for it.
class PeerFailed : public CollectiveError {
 public:
  PeerFailed(int failed_rank, const std::string& msg) : CollectiveError(msg), failed_rank_(failed_rank) {}
  int failed_rank() const { return failed_rank_; }

 private:
  int failed_rank_;
};

// ---- options and results --------------------------------------------------------------------

struct LaunchOptions {
  std::string backend = "gloo";                   // "gloo" | "nccl"
  int first_gpu = 0;                              // nccl: local rank r runs on CUDA device first_gpu + r
  std::chrono::milliseconds timeout{60000};       // per collective / rendezvous / store wait
  std::chrono::milliseconds grace{1000};          // watchdog margin on top of timeout
  std::chrono::milliseconds run_timeout{0};       // whole run cap (0: none); hung ranks detached
  bool check_shapes = true;                       // exchange signatures before each collective
  bool grad_enabled = false;                      // GradMode inside each rank (NoGrad by default)
  // Gloo device address. Empty: "127.0.0.1" for threads, GLOO_SOCKET_IFNAME or the host's
  // default address for torchrun processes.
  std::string gloo_host;
  int gloo_threads = 2;                           // Gloo worker threads per process group
  // Called on a rank's thread (or process) before its world group exists: what every rank refuses
  // on its own before any rendezvous (HF's load-time validation of a plan) throws here, so no rank
  // can see a peer's refusal as "stopped waiting in creation of group 'world'" instead of its own.
  std::function<void(int rank)> before_world;
  // Tests only: called on a rank's thread once the members of a group (world included) have all
  // committed to its backend rendezvous, just before this rank enters it (rank, group name).
  std::function<void(int, const std::string&)> before_rendezvous;
};

struct RankOutcome {
  int rank = 0;
  bool ok = false;
  bool hung = false;             // still running at the watchdog deadline; its thread was detached
  // Composed message, empty when ok: "rank 3 failed: <what>" for the first failing rank,
  // "rank 3 failed: <what>; rank 0 aborted: <own>" for the others (hung: "...; rank 1 hung: ...").
  std::string error;
  std::string own_error;         // this rank's own exception text (or hang report)
  int first_failed_rank = -1;    // same on every outcome: the rank that failed first (-1: none)
  std::string first_error;       // and its error
  double elapsed_s = 0;          // wall time of this rank, start of thread to end
  // torchrun, rank 0 only: the own error of every other rank that failed (each failing process
  // leaves it in the store before it leaves), so that one report names every rank's error.
  std::vector<std::pair<int, std::string>> peer_errors;
};

bool all_ok(const std::vector<RankOutcome>& outcomes);
// "" when all ok, else the first failure and one line per rank.
std::string describe_failures(const std::vector<RankOutcome>& outcomes);

// ---- groups ---------------------------------------------------------------------------------

namespace detail {
struct RankRuntime;  // store, options, Gloo device, counters of one rank (process_group.cpp)
struct GroupState;   // per-group call counters
}  // namespace detail

// A process group seen from one rank. Copies share their call counters (which must advance in
// step on all members), so pass it around freely within a rank, never across ranks.
struct Group {
  std::string name;         // "world", "tp[0,1]", "pp[1,3]", ... (same on every member)
  std::vector<int> ranks;   // global ranks, in group-rank order
  int rank = -1;            // this rank's index in `ranks`
  CommPtr pg;               // the backend process group (Gloo or NCCL)
  std::shared_ptr<detail::GroupState> state;

  int size() const { return static_cast<int>(ranks.size()); }
  int group_rank_of(int global_rank) const;  // -1 when not a member
  bool valid() const { return pg.defined() && state != nullptr; }
};

struct RankContext {
  int rank = 0;
  int world = 1;
  int local_rank = 0;             // GPU index for nccl (threads: == rank)
  std::string backend;            // "gloo" | "nccl"
  at::Device device{at::kCPU};    // where this rank's collective tensors live
  StorePtr store;                 // root store shared by all ranks of the run
  CommPtr world_pg;               // == world_group.pg
  Group world_group;
  LaunchOptions opts;
  std::shared_ptr<detail::RankRuntime> runtime;
};

using RankFn = std::function<void(RankContext&)>;

// Creates the subgroup holding `ranks_of_my_group` (global ranks, which must include ctx.rank).
// Every rank calls it for its own group, all at about the same time: creation is a rendezvous
// (e.g. ranks 0,1 call new_group(ctx, {0,1}, "tp") while ranks 2,3 call new_group(ctx, {2,3},
// "tp")). Members first compare their rank lists through the store (a mismatch throws
// CollectiveError naming both lists), then build the backend group on a PrefixStore.
// Calling again with the same tag creates a new, distinct group.
Group new_group(RankContext& ctx, std::vector<int> ranks_of_my_group, const std::string& tag);

// ---- launch mode A: ranks as threads ----------------------------------------------------------

// Runs fn on `world` thread-ranks and returns one outcome per rank (index == rank). Never
// throws for failures inside ranks; throws PlanError up front for a bad world size or backend
// (unknown name, nccl without CUDA/NCCL support, world > visible GPUs).
std::vector<RankOutcome> run_ranks(int world, RankFn fn, LaunchOptions opts = {});

// ---- launch mode B: ranks as processes (torchrun) ---------------------------------------------

struct EnvRank {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun serves the store
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT (agent-store key prefix)
};

// True when RANK and WORLD_SIZE are set (torchrun, or a manual launch in its style).
bool launched_by_torchrun();
// Reads and validates the variables through `lookup` (nullopt: unset). Throws PlanError whose
// key is the variable name and whose value is what it held ("(unset)" when missing).
EnvRank parse_env_rank(const std::function<std::optional<std::string>(const std::string&)>& lookup);
EnvRank read_env_rank();  // parse_env_rank over getenv
// Runs fn as this process's rank. Rank 0 serves the TCPStore (unless torchrun's agent store is
// used) and keeps it up until every rank has left (or, after a failure, until timeout + grace).
// Throws PlanError for bad options (as run_ranks; nccl also needs LOCAL_RANK < visible GPUs); a
// store that cannot be served or reached gives a failed outcome. A returned outcome with
// hung == true means fn is still running on a detached thread: exit the process.
RankOutcome run_env_rank(RankFn fn, LaunchOptions opts = {});
RankOutcome run_env_rank(const EnvRank& env, RankFn fn, LaunchOptions opts = {});
// A launch of fewer ranks than the processes torchrun started runs on RANK < its world; the
// processes left out call this instead, so that every process's next launch uses the same store
// key space.
void skip_env_run(const EnvRank& env);

// ---- backends ---------------------------------------------------------------------------------

// The launch checks run_ranks makes before any rank starts (world size, timeout, backend, the
// GPUs of an nccl launch); PlanError naming the value.
void validate_launch(int world, const LaunchOptions& o, bool threads);
bool nccl_compiled();   // built against a LibTorch with ProcessGroupNCCL (USE_C10D_NCCL)
bool nccl_available();  // compiled and CUDA usable at run time
// Free and total memory of CUDA device `device` in bytes ({-1, -1} when unknown: no CUDA build or
// no such device).
std::pair<int64_t, int64_t> cuda_memory(int device);
// LibTorch's CUDA caching allocator on `device` since the previous call with reset (or the start):
// peak bytes held by tensors (allocated) and from the driver (reserved: what nvidia-smi shows),
// and the cudaMalloc calls that failed and were retried after freeing the cache. All -1 without a
// CUDA build or such a device.
struct CudaAllocatorPeaks {
  int64_t allocated = -1, reserved = -1, alloc_retries = -1;
};
CudaAllocatorPeaks cuda_allocator_peaks(int device, bool reset = false);

// ---- checked collectives ----------------------------------------------------------------------
// Ranks (root, dst, src) are GLOBAL ranks, as in torch.distributed; they must be members of the
// group. With opts.check_shapes every call first exchanges its signature through the store and
// throws CollectiveMismatch on every member when they differ; without it, only the store's
// failure flag is checked before the call. Backend errors are rethrown as CollectiveError.

void all_reduce_sum(Group& g, at::Tensor& t);
void all_reduce_sum(RankContext& ctx, at::Tensor& t);
// One tensor per group member, in group-rank order (all must have the same shape and dtype).
std::vector<at::Tensor> all_gather(Group& g, const at::Tensor& t);
std::vector<at::Tensor> all_gather(RankContext& ctx, const at::Tensor& t);
// In place: on return every member holds root's values.
void broadcast(Group& g, at::Tensor& t, int root);
void broadcast(RankContext& ctx, at::Tensor& t, int root);
// Point to point (pipeline stages). The receiver checks the sender's signature (shape, dtype, tag)
// before posting its receive; the sender does not wait for the receiver's check. `t` of recv must
// already have the expected shape and dtype; it is filled in place.
void send(Group& g, const at::Tensor& t, int dst, int tag = 0);
void send(RankContext& ctx, const at::Tensor& t, int dst, int tag = 0);
void recv(Group& g, at::Tensor& t, int src, int tag = 0);
void recv(RankContext& ctx, at::Tensor& t, int src, int tag = 0);
void barrier(Group& g);
void barrier(RankContext& ctx);

// Throws PeerFailed when another rank has published a failure (one store lookup).
void throw_if_peer_failed(const RankContext& ctx);

}  // namespace sc
