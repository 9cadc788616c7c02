// Rank launching and checked collectives: see process_group.h for the model.
//
// Store layout (keys relative to the run's root store):
//   sc/failed                "<rank>\n<kind>\n<message>" of the first failure (kind: failed | hung)
//   sc/fail_count, sc/fail/N  every published failure, in order
//   sc/end/<rank>            "ok" | "failed": the rank's function has returned
//   sc/left/<rank>           torchrun mode: the rank no longer needs the store
//   sc/sig/<group>/<call>/<group rank>         collective signature (op, root, shape, dtype)
//   sc/p2p/<group>/<src>-<dst>/<message>       send signature, read and deleted by the receiver
//   sc/decl/<tag>#<k>/<rank>                   rank list a member declared for new_group
//   sc/pg/<group>/...                          the backend's own rendezvous (PrefixStore)
#include "harness/process_group.h"

// Debian's TorchConfig does not export USE_C10D_GLOO (2.x's torch_cpu target does); the header
// is empty without it. The library itself is built with Gloo in both.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// USE_C10D_NCCL comes from the torch_cuda target of a CUDA LibTorch; CPU builds have no NCCL.
#if defined(USE_C10D_NCCL)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <c10/core/GradMode.h>
#include <torch/cuda.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "families/decoder/comm.h"

namespace sc {

namespace detail {

// What a rank is doing inside the backend (a collective or a group's rendezvous), read by the
// watchdog: such a rank is given its full timeout, any other rank only the grace period.
struct Activity {
  std::mutex mu;
  bool in_backend = false;
  std::string what;
  std::chrono::steady_clock::time_point since{};
};

// Everything one rank needs beyond its RankContext's plain fields.
struct RankRuntime {
  StorePtr store;
  std::string store_name;  // "the TCPStore at host:port served by rank 0", ... (store failure messages)
  int rank = 0, world = 1, local_rank = 0;
  std::string backend;
  at::Device device{at::kCPU};
  LaunchOptions opts;
  // One Gloo transport device per rank, shared by all its groups (one I/O loop thread).
  std::shared_ptr<::gloo::transport::Device> gloo_device;
  std::map<std::string, int> tag_counts;  // new_group calls per tag
  std::shared_ptr<Activity> activity;     // shared with the launcher's watchdog
  std::vector<CommPtr> created;           // every backend group of this rank, for shutdown
};

// Counters that must advance in step on all members of a group.
struct GroupState {
  std::shared_ptr<RankRuntime> rt;
  int64_t calls = 0;                           // collective call number (key of the signature)
  std::map<std::pair<int, int>, int64_t> p2p;  // (src, dst) global ranks -> message number
};

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kFailed = "sc/failed";
constexpr const char* kFailCount = "sc/fail_count";

std::string fail_key(int64_t pos) { return "sc/fail/" + std::to_string(pos); }
std::string end_key(int rank) { return "sc/end/" + std::to_string(rank); }
// torchrun mode: the rank's launcher is done with the store (the server may go).
std::string left_key(int rank) { return "sc/left/" + std::to_string(rank); }

std::vector<uint8_t> to_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string from_bytes(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

// "2s", "1.5s", "250ms".
std::string fmt_duration(milliseconds ms) {
  const auto n = ms.count();
  if (n < 1000) return std::to_string(n) + "ms";
  std::ostringstream os;
  os << static_cast<double>(n) / 1000.0 << "s";
  return os.str();
}

std::string fmt_seconds(Clock::duration d) {
  std::ostringstream os;
  os.precision(2);
  os << std::fixed << std::chrono::duration<double>(d).count() << " s";
  return os.str();
}

// "[0, 1]"
std::string join_ranks(const std::vector<int>& r) {
  std::string s = "[";
  for (size_t i = 0; i < r.size(); ++i) s += (i ? ", " : "") + std::to_string(r[i]);
  return s + "]";
}

// "rank 3" / "ranks 1, 3"
std::string rank_words(const std::vector<int>& r) {
  std::string s = r.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < r.size(); ++i) s += (i ? ", " : "") + std::to_string(r[i]);
  return s;
}

// The text of the exception being handled, without LibTorch 2.x's C++ backtrace.
std::string current_exception_text() {
  std::string s;
  try {
    throw;
  } catch (const c10::Error& e) {
    s = e.what_without_backtrace();
  } catch (const std::exception& e) {
    s = e.what();
  } catch (...) {
    s = "unknown exception (not derived from std::exception)";
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// ---- failure records --------------------------------------------------------------------------

struct FailureRecord {
  int rank = -1;
  std::string kind;  // "failed" | "hung"
  std::string message;
};

std::string encode_failure(const FailureRecord& f) {
  return std::to_string(f.rank) + "\n" + f.kind + "\n" + f.message;
}

FailureRecord decode_failure(const std::string& v) {
  FailureRecord f;
  const auto a = v.find('\n');
  const auto b = a == std::string::npos ? a : v.find('\n', a + 1);
  if (b == std::string::npos) {
    f.message = v;
    return f;
  }
  try {
    f.rank = std::stoi(v.substr(0, a));
  } catch (...) {
    f.rank = -1;
  }
  f.kind = v.substr(a + 1, b - a - 1);
  f.message = v.substr(b + 1);
  return f;
}

// The first failure published in the store, if any (one lookup when there is none).
std::optional<FailureRecord> peek_failure(c10d::Store& s) {
  if (!s.check({kFailed})) return std::nullopt;
  return decode_failure(from_bytes(s.get(kFailed)));
}

// The first published failure of one of `members` (global ranks; empty: of any rank).
std::optional<FailureRecord> peek_member_failure(c10d::Store& s, const std::vector<int>& members) {
  if (members.empty()) return peek_failure(s);
  if (!s.check({kFailCount})) return std::nullopt;
  const int64_t n = s.add(kFailCount, 0);
  for (int64_t i = 1; i <= n; ++i) {
    if (!s.check({fail_key(i)})) continue;  // counted, not written yet
    FailureRecord f = decode_failure(from_bytes(s.get(fail_key(i))));
    if (std::find(members.begin(), members.end(), f.rank) != members.end()) return f;
  }
  return std::nullopt;
}

// Publishes a failure; the first publisher also sets sc/failed. Never throws: the store may be
// gone (env mode, rank 0 exited) and the caller is already handling an error.
void publish_failure(c10d::Store& s, const FailureRecord& f) noexcept {
  try {
    const int64_t pos = s.add(kFailCount, 1);
    const auto v = to_bytes(encode_failure(f));
    s.set(fail_key(pos), v);
    if (pos == 1) s.set(kFailed, v);
  } catch (...) {
  }
}

[[noreturn]] void throw_peer_failed(const FailureRecord& f, const std::string& doing) {
  throw PeerFailed(f.rank, doing + " because rank " + std::to_string(f.rank) + " " +
                               (f.kind.empty() ? "failed" : f.kind));
}

// Runs the store operations of `what`. A failing store (server gone, connection reset, store
// timeout) becomes a StoreError naming the store and the operation; errors of our own pass.
template <typename F>
auto store_guard(detail::RankRuntime& rt, const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CollectiveError&) {
    throw;
  } catch (const InputError&) {
    throw;
  } catch (...) {
    throw StoreError("lost " + rt.store_name + " in " + what + ": " + current_exception_text());
  }
}

// The pause between polls of the store: peers usually arrive within microseconds, so yield first
// (cheap, and lets them run on a busy machine), then back off to sleeps of up to 1 ms. `iter`
// counts the pauses taken.
struct Backoff {
  int iter = 0;
  std::chrono::microseconds nap{50};
  void pause() {
    if (iter++ < 32) {
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(1000));
  }
};

// Waits until every key exists. owners[i] is the global rank that writes keys[i]. Between polls
// it watches the failure flag and whether a missing owner has already ended. Throws PeerFailed,
// CollectiveError (owner ended without joining) or CollectiveTimeout after opts.timeout.
void await_keys(detail::RankRuntime& rt, const std::vector<std::string>& keys,
                const std::vector<int>& owners, const std::string& what) {
  auto& s = *rt.store;
  const auto deadline = Clock::now() + rt.opts.timeout;
  for (Backoff b;; b.pause()) {
    if (s.check(keys)) return;
    if (auto f = peek_failure(s)) {
      // The keys may have arrived between the check and the failure: a member that failed after
      // reading every key (a signature mismatch it saw) published it. Then this rank reads them
      // too and reports what it sees itself.
      if (s.check(keys)) return;
      throw_peer_failed(*f, "stopped waiting in " + what);
    }
    const bool late = Clock::now() >= deadline;
    if (late || b.iter % 16 == 15) {
      std::vector<int> missing, ended;
      for (size_t i = 0; i < keys.size(); ++i) {
        if (s.check({keys[i]})) continue;
        missing.push_back(owners[i]);
        if (s.check({end_key(owners[i])})) ended.push_back(owners[i]);
      }
      if (missing.empty()) return;
      if (!ended.empty())
        throw CollectiveError(rank_words(ended) + (ended.size() == 1 ? " has" : " have") +
                              " finished without joining " + what);
      if (late)
        throw CollectiveTimeout("waiting for " + rank_words(missing) + " in " + what + " timed out after " +
                                fmt_duration(rt.opts.timeout) + " (" +
                                (missing.size() == 1 ? "it never joined" : "they never joined") + ")");
    }
  }
}

// ---- rendezvous store ---------------------------------------------------------------------------

// The store a backend group's rendezvous runs on (Gloo exchanges its members' addresses through
// it; NCCL its unique id). A plain c10d store waits for a missing key for the whole timeout, so a
// member that declared its group and then stopped because another rank had failed (it never
// joins the rendezvous) held the others in the group's creation for that long (120 s by default).
// This store polls instead, and stops a wait at once with PeerFailed when a failure is published
// in the run's root store; waits are bounded by opts.timeout.
class RendezvousStore : public c10d::Store {
 public:
  RendezvousStore(StorePtr inner, StorePtr root, milliseconds timeout, std::string what, std::vector<int> members)
      : c10d::Store(timeout), inner_(std::move(inner)), root_(std::move(root)), what_(std::move(what)),
        members_(std::move(members)) {}

  // LibTorch 2.5+ declares clone() pure virtual (a thread-safe copy on the same store); earlier
  // versions have none, where this is a plain member. Never override-marked for that reason.
  c10::intrusive_ptr<c10d::Store> clone() {
    return c10::make_intrusive<RendezvousStore>(inner_, root_, timeout_, what_, members_);
  }

  void set(const std::string& key, const std::vector<uint8_t>& value) override { inner_->set(key, value); }
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                  const std::vector<uint8_t>& desired) override {
    return inner_->compareSet(key, expected, desired);
  }
  std::vector<uint8_t> get(const std::string& key) override {
    wait({key});
    return inner_->get(key);
  }
  int64_t add(const std::string& key, int64_t value) override { return inner_->add(key, value); }
  bool deleteKey(const std::string& key) override { return inner_->deleteKey(key); }
  bool check(const std::vector<std::string>& keys) override { return inner_->check(keys); }
  int64_t getNumKeys() override { return inner_->getNumKeys(); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const milliseconds& timeout) override {
    // Gloo 1.x asks for Store::kDefaultTimeout (300 s) here: never wait longer than the run's bound.
    milliseconds bound = timeout_;
    if (timeout.count() > 0 && (bound.count() <= 0 || timeout < bound)) bound = timeout;
    const auto deadline = Clock::now() + bound;
    for (Backoff b;; b.pause()) {
      if (inner_->check(keys)) return;
      if (auto f = peek_member_failure(*root_, members_)) {
        if (inner_->check(keys)) return;  // arrived between the check and the failure (await_keys)
        throw_peer_failed(*f, "stopped waiting in " + what_);
      }
      if (bound.count() > 0 && Clock::now() >= deadline)
        throw CollectiveTimeout("waiting for the other members in " + what_ + " timed out after " +
                                fmt_duration(bound));
    }
  }

 private:
  StorePtr inner_;  // the group's PrefixStore
  StorePtr root_;   // the run's root store (sc/failed)
  std::string what_;
  std::vector<int> members_;  // global ranks whose failure ends the wait (empty: every rank)
};

// ---- signatures -------------------------------------------------------------------------------

struct Sig {
  std::string op, root, tensor;  // "broadcast", "0", "[4, 64] float"
};

std::string encode_sig(const Sig& s) { return s.op + "\t" + s.root + "\t" + s.tensor; }

Sig decode_sig(const std::string& v) {
  Sig s;
  const auto a = v.find('\t');
  const auto b = a == std::string::npos ? a : v.find('\t', a + 1);
  if (b == std::string::npos) {
    s.op = v;
    return s;
  }
  s.op = v.substr(0, a);
  s.root = v.substr(a + 1, b - a - 1);
  s.tensor = v.substr(b + 1);
  return s;
}

// What one rank passed, without the op: "[4, 64] float", "[4] float from rank 0", "nothing".
std::string sig_args(const Sig& s) {
  std::string t = s.tensor.empty() ? "nothing" : s.tensor;
  if (!s.root.empty()) t += " from rank " + s.root;
  return t;
}

// "rank 0 has [4, 64] float, rank 1 has [4, 32] float" (ranks with equal values grouped).
std::string mismatch_parts(const std::vector<int>& ranks, const std::vector<std::string>& values,
                           const char* verb_one, const char* verb_many) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<int>> by_value;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!by_value.count(values[i])) order.push_back(values[i]);
    by_value[values[i]].push_back(ranks[i]);
  }
  std::string out;
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& who = by_value[order[i]];
    out += (i ? ", " : "") + rank_words(who) + " " + (who.size() == 1 ? verb_one : verb_many) + " " + order[i];
  }
  return out;
}

std::string exchange_signatures(Group& g, const Sig& mine, int64_t call, const std::string& what);

// Exchanges this rank's signature with the group (when checking) and returns the description of
// the call used in every message: "all_reduce (group 'world', call #3)".
std::string check_collective(Group& g, const Sig& mine) {
  if (!g.valid()) throw CollectiveError(mine.op + " on an empty Group (not created by new_group or run_ranks)");
  auto& gs = *g.state;
  auto& rt = *gs.rt;
  const int64_t call = gs.calls++;
  const std::string what = mine.op + " (group '" + g.name + "', call #" + std::to_string(call) + ")";
  return store_guard(rt, what, [&] { return exchange_signatures(g, mine, call, what); });
}

std::string exchange_signatures(Group& g, const Sig& mine, int64_t call, const std::string& what) {
  auto& rt = *g.state->rt;
  auto& s = *rt.store;
  if (!rt.opts.check_shapes) {
    if (auto f = peek_failure(s)) throw_peer_failed(*f, "stopped before " + what);
    return what;
  }
  const std::string base = "sc/sig/" + g.name + "/";
  const std::string prefix = base + std::to_string(call) + "/";
  s.set(prefix + std::to_string(g.rank), to_bytes(encode_sig(mine)));
  std::vector<std::string> keys;
  for (int i = 0; i < g.size(); ++i) keys.push_back(prefix + std::to_string(i));
  await_keys(rt, keys, g.ranks, what);

  std::vector<Sig> sigs(g.size());
  bool same = true;
  for (int i = 0; i < g.size(); ++i) {
    sigs[i] = i == g.rank ? mine : decode_sig(from_bytes(s.get(keys[i])));
    same = same && encode_sig(sigs[i]) == encode_sig(mine);
  }
  // Every member has written call `call`, so all have finished reading call - 1: drop ours.
  if (call > 0) s.deleteKey(base + std::to_string(call - 1) + "/" + std::to_string(g.rank));
  if (same) return what;

  const std::string where = "(group '" + g.name + "', call #" + std::to_string(call) + ")";
  bool same_op = true;
  for (const auto& x : sigs) same_op = same_op && x.op == mine.op;
  std::vector<std::string> values;
  if (same_op) {
    for (const auto& x : sigs) values.push_back(sig_args(x));
    throw CollectiveMismatch("collective mismatch in " + mine.op + ": " +
                             mismatch_parts(g.ranks, values, "has", "have") + " " + where);
  }
  for (const auto& x : sigs) values.push_back(x.op + " with " + sig_args(x));
  throw CollectiveMismatch("collective mismatch " + where + ": " + mismatch_parts(g.ranks, values, "calls", "call"));
}

// Marks the rank as inside the backend for the watchdog while alive.
class BackendScope {
 public:
  BackendScope(detail::RankRuntime& rt, const std::string& what) : a_(rt.activity.get()) {
    if (!a_) return;
    std::lock_guard<std::mutex> lk(a_->mu);
    a_->in_backend = true;
    a_->what = what;
    a_->since = Clock::now();
  }
  ~BackendScope() {
    if (!a_) return;
    std::lock_guard<std::mutex> lk(a_->mu);
    a_->in_backend = false;
  }
  BackendScope(const BackendScope&) = delete;
  BackendScope& operator=(const BackendScope&) = delete;

 private:
  detail::Activity* a_;
};

// LibTorch 2.x records every collective in a process-wide flight recorder whose bookkeeping is
// not safe when several threads start collectives at once (2.11's
// FlightRecorder::recordWithResetEnabled inserts into a std::map before taking its lock: a SIGSEGV
// with 8 thread-ranks). Thread-ranks therefore switch the recorder off (set_thread_rank_env) and
// start Gloo operations under this one mutex. Starting only queues the work, the wait is outside
// the lock. NCCL starts are not serialized: the first one is a blocking communicator rendezvous.
std::mutex& gloo_start_mutex() {
  static std::mutex mu;
  return mu;
}

// Runs one backend operation and waits for it; backend errors become CollectiveError.
template <typename Start>
void run_work(detail::RankRuntime& rt, const std::string& what, Start&& start) {
  BackendScope scope(rt, what);
  try {
    auto work = [&] {
      if (rt.backend != "gloo") return start();
      std::lock_guard<std::mutex> lk(gloo_start_mutex());
      return start();
    }();
    work->wait();
  } catch (const CollectiveError&) {
    throw;
  } catch (...) {
    throw CollectiveError(what + " failed: " + current_exception_text());
  }
}

int member_or_throw(const Group& g, int global_rank, const char* role, const std::string& op) {
  const int r = g.group_rank_of(global_rank);
  if (r < 0)
    throw CollectiveError(op + " in group '" + g.name + "': " + role + " rank " + std::to_string(global_rank) +
                          " is not a member of " + join_ranks(g.ranks));
  return r;
}

// ---- backends ---------------------------------------------------------------------------------

int cuda_device_count() {
  try {
    return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  } catch (...) {
    return 0;
  }
}

}  // namespace

void validate_launch(int world, const LaunchOptions& o, bool threads) {
  if (world < 1 || world > 4096)
    throw PlanError("world", std::to_string(world), "the number of ranks must be in [1, 4096]");
  if (o.timeout.count() <= 0)
    throw PlanError("timeout", std::to_string(o.timeout.count()) + "ms", "must be positive");
  if (o.backend == "gloo") return;
  if (o.backend != "nccl")
    throw PlanError("backend", o.backend, "unknown backend: expected 'gloo' or 'nccl'");
  if (!nccl_compiled())
    throw PlanError("backend", "nccl",
                    "this build has no NCCL support: LibTorch " TORCH_VERSION
                    " was compiled without CUDA/NCCL (no USE_C10D_NCCL); use backend 'gloo' or rebuild "
                    "against a CUDA LibTorch");
  const int n = cuda_device_count();
  if (n == 0) throw PlanError("backend", "nccl", "no CUDA device is usable at run time; use backend 'gloo'");
  if (o.first_gpu < 0 || o.first_gpu >= n)
    throw PlanError("device", "cuda:" + std::to_string(o.first_gpu),
                    "no such CUDA device: " + std::to_string(n) + " visible (cuda:0" +
                        (n > 1 ? " to cuda:" + std::to_string(n - 1) : std::string()) + ")");
  if (threads && o.first_gpu + world > n)
    throw PlanError("world", std::to_string(world),
                    "backend 'nccl' runs one rank per GPU but only " + std::to_string(n) +
                        " CUDA device(s) are visible" +
                        (o.first_gpu ? " (from cuda:" + std::to_string(o.first_gpu) + " on: " +
                                           std::to_string(n - o.first_gpu) + ")"
                                     : std::string()));
}

namespace {

// NCCL defaults for a harness that must survive a failed rank: blocking waits that throw on
// timeout instead of the watchdog tearing the process down, and no NVLink multicast. Only
// variables the user has not set are touched; call before any rank thread starts.
void set_nccl_env_defaults() {
  ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  ::setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", 0);  // CleanUpOnly: abort comms, keep process
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);
}

// All members of a group enter the backend's rendezvous, or none does. Gloo's rendezvous cannot be
// left half-way: once a member has connected to a peer's address, it waits for that peer's side
// of the connection, so a member that gave up after publishing its address (another rank had
// failed) left the others stuck in the group's creation past the whole timeout. Members first
// agree on one decision through the store: "go" once all have arrived, or "abort" when a failure
// is published (or the timeout passes) before that; compareSet makes the first decision the only
// one. Throws PeerFailed (or CollectiveTimeout) on every member when the decision is "abort".
void commit_to_rendezvous(detail::RankRuntime& rt, c10d::Store& store, int size, const std::string& what) {
  const std::string arrived = "commit/arrived", decision = "commit/decision";
  const auto go = to_bytes("go");
  store.add(arrived, 1);
  const auto deadline = Clock::now() + rt.opts.timeout;
  for (Backoff b;; b.pause()) {
    std::vector<uint8_t> d;
    if (store.check({decision})) {
      d = store.get(decision);
    } else if (store.add(arrived, 0) >= size) {
      d = store.compareSet(decision, {}, go);
    } else if (peek_failure(*rt.store) || Clock::now() >= deadline) {
      d = store.compareSet(decision, {}, to_bytes("abort"));
    }
    if (d == go) return;
    if (!d.empty()) {
      if (auto f = peek_failure(*rt.store)) throw_peer_failed(*f, "stopped waiting in " + what);
      throw CollectiveTimeout("waiting for the other members in " + what + " timed out after " +
                              fmt_duration(rt.opts.timeout));
    }
  }
}

// `members`: the group's global ranks (empty: the world).
CommPtr make_backend(detail::RankRuntime& rt, const StorePtr& store, int rank, int size, const std::string& name,
                     const std::vector<int>& members = {}) {
  const std::string what = "creation of group '" + name + "'";
  BackendScope scope(rt, what);
  try {
    if (size > 1) commit_to_rendezvous(rt, *store, size, what);
    if (rt.opts.before_rendezvous) rt.opts.before_rendezvous(rt.rank, name);
    if (rt.backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(rt.opts.timeout);
      o->devices.push_back(rt.gloo_device);
      o->threads = std::max(1, rt.opts.gloo_threads);
      // Every member is committed now, so the rendezvous stops early only for a member's failure
      // (RendezvousStore): a member leaving it on another rank's failure would leave the members
      // already connecting to it waiting for the whole timeout. Another rank's failure stops the
      // members at their next step instead.
      StorePtr rdv = c10::make_intrusive<RendezvousStore>(store, rt.store, rt.opts.timeout, what, members);
      CommPtr pg = c10::make_intrusive<c10d::ProcessGroupGloo>(rdv, rank, size, o);
      rt.created.push_back(pg);
      return pg;
    }
#if defined(USE_C10D_NCCL)
    if (rt.backend == "nccl") {
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = rt.opts.timeout;
      CommPtr pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, o);
      rt.created.push_back(pg);
      return pg;
    }
#endif
  } catch (const PeerFailed&) {
    throw;
  } catch (...) {
    // LibTorch 2.x rethrows errors of the rendezvous as its own type: a published failure of
    // another rank is the cause then.
    std::optional<FailureRecord> f;
    try {
      f = peek_failure(*rt.store);
    } catch (...) {
    }
    if (f) throw_peer_failed(*f, "stopped waiting in " + what);
    throw CollectiveError("creating group '" + name + "' (" + rt.backend + ", " + std::to_string(size) +
                          " ranks) failed: " + current_exception_text());
  }
  throw PlanError("backend", rt.backend, "not available in this build");
}

std::shared_ptr<::gloo::transport::Device> make_gloo_device(const LaunchOptions& o, bool threads) {
  if (!o.gloo_host.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(o.gloo_host);
  if (threads) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// Ends this rank's backend groups. Gloo needs nothing (its destructor closes the sockets, which
// releases peers). NCCL on LibTorch 2.x wants an explicit shutdown (graceful, after success) or
// abort (after a failure: does not wait for peers that will never arrive).
void finish_groups(detail::RankRuntime& rt, bool ok) noexcept {
#if defined(USE_C10D_NCCL) && TORCH_VERSION_MAJOR >= 2
  if (rt.backend == "nccl") {
    for (auto& pg : rt.created) {
      try {
        if (ok)
          pg->shutdown();
        else
          pg->abort();
      } catch (...) {
      }
    }
  }
#else
  (void)ok;
#endif
  rt.created.clear();
}

// Fills ctx for one rank and creates its world group (a rendezvous of all ranks).
void build_context(RankContext& ctx, const StorePtr& store, const std::string& store_name, int rank, int world,
                   int local_rank, const LaunchOptions& opts, bool threads, std::shared_ptr<detail::Activity> activity) {
  auto rt = std::make_shared<detail::RankRuntime>();
  rt->activity = std::move(activity);
  rt->store = store;
  rt->store_name = store_name;
  rt->rank = rank;
  rt->world = world;
  rt->local_rank = local_rank;
  rt->backend = opts.backend;
  rt->opts = opts;
  if (opts.backend == "gloo") {
    rt->gloo_device = make_gloo_device(opts, threads);
  } else {
#if defined(USE_C10D_NCCL)
    const auto gpu = static_cast<c10::DeviceIndex>(opts.first_gpu + local_rank);
    c10::cuda::set_device(gpu);  // per thread
    rt->device = at::Device(at::kCUDA, gpu);
#endif
  }
  ctx.rank = rank;
  ctx.world = world;
  ctx.local_rank = local_rank;
  ctx.backend = opts.backend;
  ctx.device = rt->device;
  ctx.store = store;
  ctx.opts = opts;
  ctx.runtime = rt;

  if (opts.before_world) opts.before_world(rank);
  Group w;
  w.name = "world";
  for (int r = 0; r < world; ++r) w.ranks.push_back(r);
  w.rank = rank;
  w.pg = make_backend(*rt, c10::make_intrusive<c10d::PrefixStore>("sc/pg/world", store), rank, world, w.name);
  w.state = std::make_shared<detail::GroupState>();
  w.state->rt = rt;
  ctx.world_pg = w.pg;
  ctx.world_group = std::move(w);
}

// ---- launching and supervision -----------------------------------------------------------------

enum class Phase { Running, Ending, Done };

struct Slot {
  int rank = 0;
  int local_rank = 0;
  Phase phase = Phase::Running;
  bool ok = false;
  bool hung = false;  // reported hung by the watchdog (stays so even if it ends later)
  std::string own_error;
  Clock::time_point start{};
  double elapsed_s = 0;
  std::shared_ptr<detail::Activity> activity = std::make_shared<detail::Activity>();
};

// Shared by the launcher and its rank threads; outlives threads that get detached.
struct RunState {
  std::mutex mu;
  std::condition_variable cv;
  RankFn fn;
  LaunchOptions opts;
  int world = 1;
  bool threads = true;
  StorePtr store;  // the store the ranks use
  std::string store_name;  // for messages: "the in-process HashStore", "the TCPStore at ..."
  std::vector<Slot> slots;
  std::optional<Clock::time_point> first_failure_seen;
  bool abandoned = false;  // the launcher has returned: late results are dropped
};

// After fn returned OK: keep the process groups up until every rank has ended (so no peer sees
// our sockets close mid-collective), any rank has failed, or the launcher gave up.
void wait_for_all_ends(RunState& st, c10d::Store& s) {
  std::vector<std::string> keys;
  for (int r = 0; r < st.world; ++r) keys.push_back(end_key(r));
  auto nap = std::chrono::microseconds(100);
  while (true) {
    if (s.check(keys) || s.check({kFailed})) return;
    {
      std::lock_guard<std::mutex> lk(st.mu);
      if (st.abandoned) return;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(10000));
  }
}

void rank_main(std::shared_ptr<RunState> st, size_t slot) {
  const int rank = st->slots[slot].rank;
  const int local_rank = st->slots[slot].local_rank;
  c10::AutoGradMode grad_mode(st->opts.grad_enabled);  // GradMode is thread local
  bool ok = false;
  std::string err;
  {
    RankContext ctx;
    try {
      build_context(ctx, st->store, st->store_name, rank, st->world, local_rank, st->opts, st->threads,
                    st->slots[slot].activity);
      st->fn(ctx);
      ok = true;
    } catch (...) {
      err = current_exception_text();
    }
    {
      std::lock_guard<std::mutex> lk(st->mu);
      st->slots[slot].phase = Phase::Ending;
    }
    if (ok) {
      try {
        st->store->set(end_key(rank), to_bytes("ok"));
        wait_for_all_ends(*st, *st->store);
      } catch (...) {
      }
    } else {
      // Publish first, then drop the process groups: closing our sockets releases peers that
      // are blocked on us inside Gloo.
      publish_failure(*st->store, FailureRecord{rank, "failed", err});
      {
        std::lock_guard<std::mutex> lk(st->mu);
        if (!st->first_failure_seen) st->first_failure_seen = Clock::now();
      }
      try {
        st->store->set(end_key(rank), to_bytes("failed"));
      } catch (...) {
      }
    }
    if (ctx.runtime) finish_groups(*ctx.runtime, ok);
  }  // ctx destroyed here: process groups shut down
  std::lock_guard<std::mutex> lk(st->mu);
  if (st->abandoned) return;
  auto& s = st->slots[slot];
  if (!s.hung) {  // a rank reported hung keeps that report: its hang was published
    s.ok = ok;
    s.own_error = err;
    s.elapsed_s = std::chrono::duration<double>(Clock::now() - s.start).count();
  }
  s.phase = Phase::Done;
  st->cv.notify_all();
}

// Waits for all slots to be Done, as the watchdog. Once a failure is known (at time F), a rank
// still in its function is reported hung at F + grace/2 when it is outside the backend, or at
// (start of its backend op + timeout) + grace/2 when inside one (Gloo throws by then); with
// run_timeout, every rank still running at that time is. Hangs are published in the store so
// that ranks waiting on them stop. When only hung ranks remain, the others get grace/2 more to
// shut down; run_ranks thus returns within timeout + grace of the first failure. Sets
// st.abandoned when some slot is still not Done on return.
void supervise(RunState& st, c10d::Store& poll_store, milliseconds poll) {
  const auto run_start = Clock::now();
  const auto half_grace = std::max(st.opts.grace / 2, milliseconds(50));
  std::unique_lock<std::mutex> lk(st.mu);
  auto all_done = [&] {
    return std::all_of(st.slots.begin(), st.slots.end(), [](const Slot& s) { return s.phase == Phase::Done; });
  };
  auto settled = [&] {  // everything left is hung
    return std::all_of(st.slots.begin(), st.slots.end(),
                       [](const Slot& s) { return s.phase == Phase::Done || s.hung; });
  };
  std::optional<FailureRecord> first;
  while (!all_done()) {
    st.cv.wait_for(lk, poll, all_done);
    if (all_done()) break;
    if (!first) {
      lk.unlock();
      std::optional<FailureRecord> f;
      try {
        f = peek_failure(poll_store);
      } catch (...) {
      }
      lk.lock();
      if (f) {
        first = f;
        if (!st.first_failure_seen) st.first_failure_seen = Clock::now();
      }
    }
    const auto now = Clock::now();
    std::vector<FailureRecord> newly_hung;
    for (auto& s : st.slots) {
      if (s.phase != Phase::Running || s.hung) continue;
      bool in_backend = false;
      std::string what;
      Clock::time_point since{};
      {
        std::lock_guard<std::mutex> alk(s.activity->mu);
        in_backend = s.activity->in_backend;
        what = s.activity->what;
        since = s.activity->since;
      }
      auto deadline = Clock::time_point::max();
      const bool capped = st.opts.run_timeout.count() > 0;
      if (capped) deadline = run_start + st.opts.run_timeout;
      if (st.first_failure_seen) {
        auto base = *st.first_failure_seen;
        if (in_backend) base = std::max(base, since + st.opts.timeout);
        deadline = std::min(deadline, base + half_grace);
      }
      if (now < deadline) continue;
      s.hung = true;
      const std::string where = in_backend ? "stuck in " + what + " for " + fmt_seconds(now - since)
                                           : "still running outside any collective";
      const std::string when = st.first_failure_seen
                                   ? " " + fmt_seconds(now - *st.first_failure_seen) + " after " +
                                         (first ? "rank " + std::to_string(first->rank) + " failed"
                                                : std::string("the first failure"))
                                   : " at the run timeout of " + fmt_duration(st.opts.run_timeout);
      s.own_error = where + when + "; its thread was detached, the process should exit";
      s.elapsed_s = std::chrono::duration<double>(now - s.start).count();
      newly_hung.push_back(FailureRecord{s.rank, "hung", s.own_error});
    }
    if (!newly_hung.empty()) {
      lk.unlock();
      for (const auto& h : newly_hung) publish_failure(poll_store, h);
      lk.lock();
      if (!st.first_failure_seen) st.first_failure_seen = Clock::now();
    }
    if (!settled()) continue;
    // Only hung ranks are left running: the others get a short while to end and shut down.
    st.cv.wait_for(lk, half_grace, all_done);
    for (auto& s : st.slots) {
      if (s.phase == Phase::Done || s.hung) continue;
      s.hung = true;
      s.own_error = "still shutting down its process groups at the watchdog deadline; its thread was detached";
      s.elapsed_s = std::chrono::duration<double>(Clock::now() - s.start).count();
    }
    if (!all_done()) st.abandoned = true;
    return;
  }
}

std::optional<FailureRecord> first_failure(c10d::Store& s) {
  try {
    if (s.check({fail_key(1)})) return decode_failure(from_bytes(s.get(fail_key(1))));
    return peek_failure(s);
  } catch (...) {
    return std::nullopt;
  }
}

RankOutcome compose_outcome(const Slot& s, const std::optional<FailureRecord>& first) {
  RankOutcome o;
  o.rank = s.rank;
  o.ok = s.ok && !s.hung;
  o.hung = s.hung;
  o.own_error = s.own_error;
  o.elapsed_s = s.elapsed_s;
  if (first) {
    o.first_failed_rank = first->rank;
    o.first_error = first->message;
  }
  if (o.ok) return o;
  const std::string verb = s.hung ? "hung" : "failed";
  if (!first || first->rank == s.rank) {
    o.error = "rank " + std::to_string(s.rank) + " " + verb + ": " + s.own_error;
    if (!first) {
      o.first_failed_rank = s.rank;
      o.first_error = s.own_error;
    }
  } else {
    o.error = "rank " + std::to_string(first->rank) + " " + (first->kind.empty() ? "failed" : first->kind) + ": " +
              first->message + "; rank " + std::to_string(s.rank) + " " + (s.hung ? "hung" : "aborted") + ": " +
              s.own_error;
  }
  return o;
}

std::thread start_rank_thread(const std::shared_ptr<RunState>& st, size_t slot) {
  st->slots[slot].start = Clock::now();
  return std::thread([st, slot] { rank_main(st, slot); });
}

// Joins threads that finished; detaches the ones the watchdog gave up on.
void reap(RunState& st, std::vector<std::thread>& threads) {
  std::vector<bool> done(threads.size());
  {
    std::lock_guard<std::mutex> lk(st.mu);
    for (size_t i = 0; i < threads.size(); ++i) done[i] = st.slots[i].phase == Phase::Done;
  }
  for (size_t i = 0; i < threads.size(); ++i) {
    if (done[i])
      threads[i].join();
    else
      threads[i].detach();
  }
}

int parse_int_var(const std::string& name, const std::optional<std::string>& v, long lo, long hi,
                  const std::string& range) {
  if (!v) throw PlanError(name, "(unset)", "not set; start with torchrun or set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT");
  const std::string& s = *v;
  size_t used = 0;
  long x = 0;
  try {
    x = std::stol(s, &used);
  } catch (...) {
    used = 0;
  }
  if (s.empty() || used != s.size()) throw PlanError(name, s.empty() ? "(empty)" : s, "not an integer");
  if (x < lo || x > hi) throw PlanError(name, s, "out of range: must be in " + range);
  return static_cast<int>(x);
}

}  // namespace

std::pair<int64_t, int64_t> cuda_memory(int device) {
#if defined(USE_C10D_NCCL)
  if (device < 0 || device >= cuda_device_count()) return {-1, -1};
  // Memory an earlier launch of this process freed is still held by LibTorch's caching allocator
  // (steer's sweep after its extraction): hand it back first, so that "free" counts it.
  c10::cuda::CUDACachingAllocator::emptyCache();
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) return {-1, -1};
  size_t free = 0, total = 0;
  const bool ok = cudaSetDevice(device) == cudaSuccess && cudaMemGetInfo(&free, &total) == cudaSuccess;
  cudaSetDevice(prev);
  if (!ok) return {-1, -1};
  return {int64_t(free), int64_t(total)};
#else
  (void)device;
  return {-1, -1};
#endif
}

CudaAllocatorPeaks cuda_allocator_peaks(int device, bool reset) {
  CudaAllocatorPeaks out;
#if defined(USE_C10D_NCCL)
  if (device < 0 || device >= cuda_device_count()) return out;
  namespace alloc = c10::cuda::CUDACachingAllocator;
  try {  // the allocator knows no device before its first allocation ("Invalid device argument")
    const auto st = alloc::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    out.allocated = st.allocated_bytes[0].peak;  // [0]: the aggregate over the small and large pools
    out.reserved = st.reserved_bytes[0].peak;
    out.alloc_retries = st.num_alloc_retries;
    if (reset) alloc::resetPeakStats(static_cast<c10::DeviceIndex>(device));
  } catch (const std::exception&) {
    return CudaAllocatorPeaks{};
  }
#else
  (void)device;
  (void)reset;
#endif
  return out;
}

// ---- public API ---------------------------------------------------------------------------------

int Group::group_rank_of(int global_rank) const {
  for (size_t i = 0; i < ranks.size(); ++i)
    if (ranks[i] == global_rank) return static_cast<int>(i);
  return -1;
}

bool nccl_compiled() {
#if defined(USE_C10D_NCCL)
  return true;
#else
  return false;
#endif
}

bool nccl_available() { return nccl_compiled() && cuda_device_count() > 0; }

bool all_ok(const std::vector<RankOutcome>& outcomes) {
  return std::all_of(outcomes.begin(), outcomes.end(), [](const RankOutcome& o) { return o.ok; });
}

std::string describe_failures(const std::vector<RankOutcome>& outcomes) {
  if (all_ok(outcomes)) return "";
  std::string s;
  for (const auto& o : outcomes) {
    if (s.empty() && o.first_failed_rank >= 0)
      s = "first failure: rank " + std::to_string(o.first_failed_rank) + ": " + o.first_error + "\n";
    s += "  rank " + std::to_string(o.rank) + ": " +
         (o.ok ? std::string("ok") : (o.hung ? "hung: " : "error: ") + o.own_error) + "\n";
  }
  return s;
}

Group new_group(RankContext& ctx, std::vector<int> ranks, const std::string& tag) {
  if (!ctx.runtime) throw CollectiveError("new_group('" + tag + "') outside a rank started by run_ranks/run_env_rank");
  auto& rt = *ctx.runtime;
  if (tag.empty() || !std::all_of(tag.begin(), tag.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      }))
    throw PlanError("group tag", tag, "must be non-empty letters, digits, '_', '-' or '.'");
  const std::string list = join_ranks(ranks);
  if (ranks.empty()) throw PlanError("group ranks", list, "a group needs at least one rank");
  std::set<int> seen;
  for (int r : ranks) {
    if (r < 0 || r >= ctx.world)
      throw PlanError("group ranks", list, "rank " + std::to_string(r) + " is outside the world of " +
                                               std::to_string(ctx.world));
    if (!seen.insert(r).second) throw PlanError("group ranks", list, "rank " + std::to_string(r) + " is listed twice");
  }
  const auto me = std::find(ranks.begin(), ranks.end(), ctx.rank);
  if (me == ranks.end())
    throw PlanError("group ranks", list, "rank " + std::to_string(ctx.rank) + " must only create its own group");

  // Members compare their lists first: a disagreement becomes an error instead of a rendezvous
  // that never completes.
  const int k = rt.tag_counts[tag]++;
  const std::string decl = "sc/decl/" + tag + "#" + std::to_string(k) + "/";
  std::vector<std::string> keys;
  for (int r : ranks) keys.push_back(decl + std::to_string(r));
  const std::string what = "creation of group '" + tag + "' " + list;
  store_guard(rt, what, [&] {
    rt.store->set(decl + std::to_string(ctx.rank), to_bytes(list));
    await_keys(rt, keys, ranks, what);
    for (size_t i = 0; i < ranks.size(); ++i) {
      const std::string theirs = from_bytes(rt.store->get(keys[i]));
      if (theirs != list)
        throw CollectiveError("group mismatch for tag '" + tag + "': rank " + std::to_string(ctx.rank) + " declared " +
                              list + ", rank " + std::to_string(ranks[i]) + " declared " + theirs);
    }
  });

  Group g;
  g.name = tag + "[";
  for (size_t i = 0; i < ranks.size(); ++i) g.name += (i ? "," : "") + std::to_string(ranks[i]);
  g.name += "]" + (k ? "#" + std::to_string(k) : std::string());
  g.rank = static_cast<int>(me - ranks.begin());
  g.ranks = std::move(ranks);
  g.pg = make_backend(rt, c10::make_intrusive<c10d::PrefixStore>("sc/pg/" + g.name, rt.store), g.rank, g.size(),
                      g.name, g.ranks);
  g.state = std::make_shared<detail::GroupState>();
  g.state->rt = ctx.runtime;
  return g;
}

std::vector<RankOutcome> run_ranks(int world, RankFn fn, LaunchOptions opts) {
  validate_launch(world, opts, /*threads=*/true);
  // See gloo_start_mutex(); read when the recorder is first used, so before any group exists.
  ::setenv("TORCH_FR_BUFFER_SIZE", "0", 0);
  if (opts.backend == "nccl") set_nccl_env_defaults();
  auto st = std::make_shared<RunState>();
  st->fn = std::move(fn);
  st->opts = opts;
  st->world = world;
  st->threads = true;
  st->store = c10::make_intrusive<c10d::HashStore>();
  st->store_name = "the in-process HashStore";
  st->store->setTimeout(opts.timeout);  // bounds the backends' rendezvous waits
  st->slots.resize(world);
  for (int r = 0; r < world; ++r) st->slots[r].rank = st->slots[r].local_rank = r;

  std::vector<std::thread> threads;
  threads.reserve(world);
  for (int r = 0; r < world; ++r) threads.push_back(start_rank_thread(st, r));
  supervise(*st, *st->store, milliseconds(20));
  reap(*st, threads);

  const auto first = first_failure(*st->store);
  std::lock_guard<std::mutex> lk(st->mu);
  std::vector<RankOutcome> out;
  for (const auto& s : st->slots) out.push_back(compose_outcome(s, first));
  return out;
}

bool launched_by_torchrun() { return std::getenv("RANK") != nullptr && std::getenv("WORLD_SIZE") != nullptr; }

EnvRank parse_env_rank(const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  EnvRank e;
  e.world = parse_int_var("WORLD_SIZE", lookup("WORLD_SIZE"), 1, 4096, "[1, 4096]");
  e.rank = parse_int_var("RANK", lookup("RANK"), 0, e.world - 1,
                         "[0, WORLD_SIZE) = [0, " + std::to_string(e.world) + ")");
  const auto local = lookup("LOCAL_RANK");
  e.local_rank = local ? parse_int_var("LOCAL_RANK", local, 0, e.world - 1, "[0, WORLD_SIZE)") : e.rank;
  const auto addr = lookup("MASTER_ADDR");
  if (!addr) throw PlanError("MASTER_ADDR", "(unset)", "not set; start with torchrun or set it to rank 0's host");
  if (addr->empty()) throw PlanError("MASTER_ADDR", "(empty)", "must name rank 0's host");
  e.master_addr = *addr;
  e.master_port = parse_int_var("MASTER_PORT", lookup("MASTER_PORT"), 1, 65535, "[1, 65535]");
  const auto agent = lookup("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
  if (e.agent_store) {
    const auto rc = lookup("TORCHELASTIC_RESTART_COUNT");
    e.restart_count = rc ? parse_int_var("TORCHELASTIC_RESTART_COUNT", rc, 0, 1000000, "[0, 1000000]") : 0;
  }
  return e;
}

EnvRank read_env_rank() {
  return parse_env_rank([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

RankOutcome run_env_rank(RankFn fn, LaunchOptions opts) { return run_env_rank(read_env_rank(), std::move(fn), opts); }

namespace {
// Several runs in one job share torchrun's store: give each its own key space. Counted per
// (store address, rank) so that ranks simulated as threads of one process stay in step.
std::string next_env_run_prefix(const EnvRank& env) {
  static std::mutex counter_mu;
  static std::map<std::string, int> run_counter;
  std::lock_guard<std::mutex> lk(counter_mu);
  const std::string id = env.master_addr + ":" + std::to_string(env.master_port) + "/" + std::to_string(env.rank);
  return "shardcheck/run" + std::to_string(run_counter[id]++);
}
std::string error_key(int rank) { return "sc/error/" + std::to_string(rank); }
}  // namespace

void skip_env_run(const EnvRank& env) { next_env_run_prefix(env); }

RankOutcome run_env_rank(const EnvRank& env, RankFn fn, LaunchOptions opts) {
  validate_launch(env.world, opts, /*threads=*/false);
  if (opts.backend == "nccl") {
    const int n = cuda_device_count();
    if (opts.first_gpu + env.local_rank >= n)
      throw PlanError("LOCAL_RANK", std::to_string(env.local_rank),
                      "backend 'nccl' needs a GPU per local rank but only " + std::to_string(n) +
                          " CUDA device(s) are visible");
    set_nccl_env_defaults();
  }
  const std::string run_prefix = next_env_run_prefix(env);
  const bool server = env.rank == 0 && !env.agent_store;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);

  // One TCPStore (served by rank 0, or torchrun's agent store) and one connection of each kind per
  // process for the whole job: launches follow one another (repro, steer, share_from_rank0), and
  // a server re-created per launch let early peers reach the previous launch's dying server.
  auto connect = [&](bool as_server, int which) -> StorePtr {
    static std::mutex mu;
    static std::map<std::string, StorePtr> base;
    const std::string id = env.master_addr + ":" + std::to_string(env.master_port) + "/" + std::to_string(env.rank) +
                           (as_server ? "/server" : "/client") + std::to_string(which);
    StorePtr s;
    {
      std::lock_guard<std::mutex> lk(mu);
      auto it = base.find(id);
      if (it != base.end()) s = it->second;
    }
    if (!s) {  // connecting may wait for the server: not under the lock (ranks as threads share it)
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(env.master_port);
      so.isServer = as_server;
      so.numWorkers = static_cast<std::size_t>(env.world);
      so.waitWorkers = false;
      so.timeout = opts.timeout;
      s = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
      std::lock_guard<std::mutex> lk(mu);
      base.emplace(id, s);
    }
    if (env.agent_store)
      s = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), s);
    return c10::make_intrusive<c10d::PrefixStore>(run_prefix, s);
  };

  auto st = std::make_shared<RunState>();
  st->fn = std::move(fn);
  st->opts = opts;
  st->world = env.world;
  st->threads = false;
  st->slots.resize(1);
  st->slots[0].rank = env.rank;
  st->slots[0].local_rank = env.local_rank;
  st->store_name = env.agent_store ? "torchrun's agent store at " + where
                                   : "the TCPStore at " + where + " (served by rank 0)";
  StorePtr watch;  // a second client for the supervisor: the rank's client may sit in a long wait
  try {
    st->store = connect(server, 0);
    watch = connect(false, 1);
  } catch (...) {
    RankOutcome o;
    o.rank = env.rank;
    o.own_error = std::string(server ? "cannot serve" : "cannot reach") + " the TCPStore at " + where +
                  " (MASTER_ADDR/MASTER_PORT): " + current_exception_text();
    o.error = "rank " + std::to_string(env.rank) + " failed: " + o.own_error;
    o.first_failed_rank = env.rank;
    o.first_error = o.own_error;
    return o;
  }

  std::vector<std::thread> threads;
  threads.push_back(start_rank_thread(st, 0));
  supervise(*st, *watch, milliseconds(100));
  reap(*st, threads);

  // Read the outcome's failure while the store is surely up, then say we are leaving. The server
  // keeps the store up until every rank has left (bounded after a failure), so that late peers
  // can still publish and read failures.
  const auto first = first_failure(*watch);
  RankOutcome mine;
  {
    std::lock_guard<std::mutex> lk(st->mu);
    mine = compose_outcome(st->slots[0], first);
  }
  try {
    if (!mine.ok) watch->set(error_key(env.rank), to_bytes(mine.own_error));  // for rank 0's report
    watch->set(left_key(env.rank), to_bytes("1"));
  } catch (...) {
  }
  // Every process waits until every rank of the launch has left (bounded after a failure): the
  // server keeps the store up for late peers, and the next launch of the job (repro, steer) never
  // overlaps this one (Gloo pairs of a leaving launch must not meet the next one's).
  {
    std::vector<std::string> keys;
    for (int r = 0; r < env.world; ++r) keys.push_back(left_key(r));
    std::optional<Clock::time_point> failure_seen;
    while (true) {
      try {
        if (watch->check(keys)) break;
        if (!failure_seen && watch->check({kFailed})) failure_seen = Clock::now();
      } catch (...) {
        break;
      }
      if (failure_seen && Clock::now() > *failure_seen + opts.timeout + opts.grace) break;
      {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->abandoned) break;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    for (int r = 1; r < env.world && env.rank == 0; ++r) {
      try {
        if (watch->check({error_key(r)})) {
          const std::vector<uint8_t> v = watch->get(error_key(r));
          mine.peer_errors.emplace_back(r, std::string(v.begin(), v.end()));
        }
      } catch (...) {
      }
    }
  }
  return mine;
}

// ---- collectives --------------------------------------------------------------------------------

void all_reduce_sum(Group& g, at::Tensor& t) {
  const std::string what = check_collective(g, Sig{"all_reduce", "", tensor_signature(t)});
  at::Tensor buf = t.is_contiguous() ? t : t.contiguous();
  std::vector<at::Tensor> v{buf};
  run_work(*g.state->rt, what, [&] { return g.pg->allreduce(v, c10d::AllreduceOptions()); });  // default op: SUM
  if (!buf.is_same(t)) t.copy_(buf);
}

std::vector<at::Tensor> all_gather(Group& g, const at::Tensor& t) {
  const std::string what = check_collective(g, Sig{"all_gather", "", tensor_signature(t)});
  std::vector<at::Tensor> in{t.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < g.size(); ++i) out[0].push_back(at::empty(in[0].sizes(), in[0].options()));
  run_work(*g.state->rt, what, [&] { return g.pg->allgather(out, in, c10d::AllgatherOptions()); });
  return out[0];
}

void broadcast(Group& g, at::Tensor& t, int root) {
  const int groot = member_or_throw(g, root, "root", "broadcast");
  const std::string what = check_collective(g, Sig{"broadcast", std::to_string(root), tensor_signature(t)});
  at::Tensor buf = t.is_contiguous() ? t : t.contiguous();
  std::vector<at::Tensor> v{buf};
  c10d::BroadcastOptions o;
  o.rootRank = groot;
  o.rootTensor = 0;
  run_work(*g.state->rt, what, [&] { return g.pg->broadcast(v, o); });
  if (!buf.is_same(t)) t.copy_(buf);
}

void send(Group& g, const at::Tensor& t, int dst, int tag) {
  if (!g.valid()) throw CollectiveError("send on an empty Group");
  const int gdst = member_or_throw(g, dst, "destination", "send");
  const int me = g.ranks[g.rank];
  if (dst == me) throw CollectiveError("send in group '" + g.name + "': rank " + std::to_string(me) + " sends to itself");
  auto& rt = *g.state->rt;
  const int64_t n = g.state->p2p[{me, dst}]++;
  const std::string what = "send to rank " + std::to_string(dst) + " (group '" + g.name + "', message #" +
                           std::to_string(n) + ", tag " + std::to_string(tag) + ")";
  store_guard(rt, what, [&] {
    if (rt.opts.check_shapes) {
      const std::string key = "sc/p2p/" + g.name + "/" + std::to_string(me) + "-" + std::to_string(dst) + "/" +
                              std::to_string(n);
      rt.store->set(key, to_bytes(encode_sig(Sig{"send", std::to_string(tag), tensor_signature(t)})));
    } else if (auto f = peek_failure(*rt.store)) {
      throw_peer_failed(*f, "stopped before " + what);
    }
  });
  std::vector<at::Tensor> v{t.contiguous()};
  run_work(*g.state->rt, what, [&] { return g.pg->send(v, gdst, tag); });
}

void recv(Group& g, at::Tensor& t, int src, int tag) {
  if (!g.valid()) throw CollectiveError("recv on an empty Group");
  const int gsrc = member_or_throw(g, src, "source", "recv");
  const int me = g.ranks[g.rank];
  if (src == me) throw CollectiveError("recv in group '" + g.name + "': rank " + std::to_string(me) + " receives from itself");
  auto& rt = *g.state->rt;
  const int64_t n = g.state->p2p[{src, me}]++;
  const std::string what = "recv from rank " + std::to_string(src) + " (group '" + g.name + "', message #" +
                           std::to_string(n) + ", tag " + std::to_string(tag) + ")";
  const std::string mine = tensor_signature(t);
  store_guard(rt, what, [&] {
    if (rt.opts.check_shapes) {
      const std::string key = "sc/p2p/" + g.name + "/" + std::to_string(src) + "-" + std::to_string(me) + "/" +
                              std::to_string(n);
      await_keys(rt, {key}, {src}, what);
      const Sig theirs = decode_sig(from_bytes(rt.store->get(key)));
      rt.store->deleteKey(key);  // the receiver is the only reader
      if (theirs.root != std::to_string(tag) || theirs.tensor != mine)
        throw CollectiveMismatch("send/recv mismatch: rank " + std::to_string(src) + " sends " + theirs.tensor +
                                 " (tag " + theirs.root + ") to rank " + std::to_string(me) + ", rank " +
                                 std::to_string(me) + " expects " + mine + " (tag " + std::to_string(tag) +
                                 ") (group '" + g.name + "', message #" + std::to_string(n) + ")");
    } else if (auto f = peek_failure(*rt.store)) {
      throw_peer_failed(*f, "stopped before " + what);
    }
  });
  at::Tensor buf = t.is_contiguous() ? t : at::empty(t.sizes(), t.options());
  std::vector<at::Tensor> v{buf};
  run_work(*g.state->rt, what, [&] { return g.pg->recv(v, gsrc, tag); });
  if (!buf.is_same(t)) t.copy_(buf);
}

void barrier(Group& g) {
  const std::string what = check_collective(g, Sig{"barrier", "", ""});
  // With checks on, the signature exchange above already waited for every member.
  if (g.state->rt->opts.check_shapes) return;
  run_work(*g.state->rt, what, [&] { return g.pg->barrier(c10d::BarrierOptions()); });
}

void all_reduce_sum(RankContext& ctx, at::Tensor& t) { all_reduce_sum(ctx.world_group, t); }
std::vector<at::Tensor> all_gather(RankContext& ctx, const at::Tensor& t) { return all_gather(ctx.world_group, t); }
void broadcast(RankContext& ctx, at::Tensor& t, int root) { broadcast(ctx.world_group, t, root); }
void send(RankContext& ctx, const at::Tensor& t, int dst, int tag) { send(ctx.world_group, t, dst, tag); }
void recv(RankContext& ctx, at::Tensor& t, int src, int tag) { recv(ctx.world_group, t, src, tag); }
void barrier(RankContext& ctx) { barrier(ctx.world_group); }

void throw_if_peer_failed(const RankContext& ctx) {
  if (!ctx.store) return;
  std::optional<FailureRecord> f;
  if (ctx.runtime)
    f = store_guard(*ctx.runtime, "a failure check", [&] { return peek_failure(*ctx.store); });
  else
    f = peek_failure(*ctx.store);
  if (f) throw_peer_failed(*f, "rank " + std::to_string(ctx.rank) + " stopped");
}

}  // namespace sc
