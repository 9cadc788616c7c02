// Rank launching and checked collectives (harness/process_group.h): ranks as threads over one
// HashStore with real ProcessGroupGloo instances, and ranks over a TCPStore as torchrun would set
// them up (here still threads of this process, one run_env_rank call each).
#include "harness/process_group.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

sc::LaunchOptions fast(int timeout_ms = 2000) {
  sc::LaunchOptions o;
  o.timeout = milliseconds(timeout_ms);
  o.grace = milliseconds(600);
  return o;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Every outcome names the same first failure; failed ranks' errors start with it.
void expect_first_failure(const std::vector<sc::RankOutcome>& out, int rank, const std::string& part) {
  for (const auto& o : out) {
    EXPECT_EQ(o.first_failed_rank, rank) << "rank " << o.rank << ": " << o.error;
    EXPECT_TRUE(contains(o.first_error, part)) << "rank " << o.rank << " first_error: " << o.first_error;
    if (!o.ok) {
      const std::string head = "rank " + std::to_string(rank) + " ";
      EXPECT_EQ(o.error.rfind(head, 0), 0u) << o.error;
      EXPECT_TRUE(contains(o.error, part)) << o.error;
    }
  }
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// ---- happy paths -------------------------------------------------------------------------------

class AllReduceWorld : public ::testing::TestWithParam<int> {};

TEST_P(AllReduceWorld, ExactSum) {
  const int world = GetParam();
  auto out = sc::run_ranks(world, [](sc::RankContext& ctx) {
    // Integers in float: the sum is exact whatever the reduction order.
    auto t = torch::arange(12, torch::kFloat).reshape({3, 4}) * (ctx.rank + 1);
    sc::all_reduce_sum(ctx, t);
    const float k = static_cast<float>(ctx.world * (ctx.world + 1) / 2);
    auto want = torch::arange(12, torch::kFloat).reshape({3, 4}) * k;
    if (!torch::equal(t, want)) throw std::runtime_error("wrong sum on rank " + std::to_string(ctx.rank));
    // A non-contiguous view is reduced in place too.
    auto m = torch::ones({4, 6}, torch::kDouble).t();
    sc::all_reduce_sum(ctx, m);
    if (m.sum().item<double>() != 24.0 * ctx.world) throw std::runtime_error("wrong strided sum");
  }, fast());
  ASSERT_EQ(out.size(), static_cast<size_t>(world));
  EXPECT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
  for (int r = 0; r < world; ++r) EXPECT_EQ(out[r].rank, r);
}

INSTANTIATE_TEST_SUITE_P(ThreadRanks, AllReduceWorld, ::testing::Values(2, 4, 8));

TEST(ProcessGroup, AllGatherBroadcastBarrierAndGradMode) {
  std::atomic<int> grad_on{0};
  auto out = sc::run_ranks(4, [&](sc::RankContext& ctx) {
    if (torch::GradMode::is_enabled()) ++grad_on;
    auto parts = sc::all_gather(ctx, torch::full({2}, static_cast<double>(ctx.rank), torch::kDouble));
    if (parts.size() != 4) throw std::runtime_error("gather size");
    for (int r = 0; r < 4; ++r)
      if (parts[r][1].item<double>() != r) throw std::runtime_error("gather order");
    auto b = ctx.rank == 2 ? torch::tensor({7, 8, 9}, torch::kLong) : torch::zeros({3}, torch::kLong);
    sc::broadcast(ctx, b, 2);
    if (b.sum().item<int64_t>() != 24) throw std::runtime_error("broadcast value");
    sc::barrier(ctx);
    sc::throw_if_peer_failed(ctx);
  }, fast());
  EXPECT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
  EXPECT_EQ(grad_on.load(), 0);  // NoGrad by default, per thread

  auto opts = fast();
  opts.grad_enabled = true;
  out = sc::run_ranks(2, [&](sc::RankContext&) { if (torch::GradMode::is_enabled()) ++grad_on; }, opts);
  EXPECT_TRUE(sc::all_ok(out));
  EXPECT_EQ(grad_on.load(), 2);
}

// Two tensor-parallel groups {0,1} and {2,3} inside world 4, plus the pipeline pairs {0,2} and
// {1,3}: reductions stay inside their group; stage 0 sends to stage 1.
TEST(ProcessGroup, SubgroupsReduceOnlyWithinTheGroup) {
  for (bool check : {true, false}) {
    auto opts = fast();
    opts.check_shapes = check;
    auto out = sc::run_ranks(4, [](sc::RankContext& ctx) {
      const int stage = ctx.rank / 2;
      sc::Group tp = sc::new_group(ctx, {stage * 2, stage * 2 + 1}, "tp");
      sc::Group pp = sc::new_group(ctx, {ctx.rank % 2, ctx.rank % 2 + 2}, "pp");
      if (tp.size() != 2 || tp.rank != ctx.rank % 2 || pp.rank != stage) throw std::runtime_error("group ranks");
      auto t = torch::full({5}, static_cast<float>(ctx.rank + 1));
      sc::all_reduce_sum(tp, t);
      const float want = stage == 0 ? 1 + 2 : 3 + 4;
      if (t[0].item<float>() != want)
        throw std::runtime_error("tp sum " + std::to_string(t[0].item<float>()) + " != " + std::to_string(want));
      // Pipeline: stage 0 sends its TP result to the matching rank of stage 1.
      if (stage == 0) {
        sc::send(pp, t * 10, ctx.rank + 2);
      } else {
        auto got = torch::zeros({5});
        sc::recv(pp, got, ctx.rank - 2);
        if (got[4].item<float>() != 30) throw std::runtime_error("pp recv");
      }
      sc::barrier(pp);
      sc::Group again = sc::new_group(ctx, {stage * 2, stage * 2 + 1}, "tp");  // same tag: a new group
      if (again.name == tp.name) throw std::runtime_error("group names must differ: " + again.name);
      auto one = torch::ones({1});
      sc::all_reduce_sum(again, one);
      if (one.item<float>() != 2) throw std::runtime_error("second tp group");
    }, opts);
    EXPECT_TRUE(sc::all_ok(out)) << "check_shapes=" << check << "\n" << sc::describe_failures(out);
  }
}

TEST(ProcessGroup, SendRecvBetweenRanks) {
  auto out = sc::run_ranks(3, [](sc::RankContext& ctx) {
    // A chain 0 -> 1 -> 2, twice, with tags; each hop adds its rank.
    for (int step = 0; step < 2; ++step) {
      auto t = torch::zeros({2, 3});
      if (ctx.rank > 0) sc::recv(ctx, t, ctx.rank - 1, step);
      t += ctx.rank + step;
      if (ctx.rank < 2) sc::send(ctx, t, ctx.rank + 1, step);
      if (ctx.rank == 2 && t[1][2].item<float>() != 3 + 3 * step) throw std::runtime_error("chain value");
    }
  }, fast());
  EXPECT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
}

// ---- failures ------------------------------------------------------------------------------------

// A rank that throws releases the others (blocked in a collective) well within the timeout, and
// every outcome names it; with and without the signature check.
TEST(ProcessGroupFailure, ThrowingRankReleasesPeers) {
  for (bool check : {true, false}) {
    auto opts = fast(3000);
    opts.check_shapes = check;
    const auto t0 = Clock::now();
    auto out = sc::run_ranks(4, [](sc::RankContext& ctx) {
      auto t = torch::ones({8});
      sc::all_reduce_sum(ctx, t);  // one good collective first
      if (ctx.rank == 3) {
        std::this_thread::sleep_for(milliseconds(100));  // the others are inside all_reduce by now
        throw std::runtime_error("boom from rank three");
      }
      sc::all_reduce_sum(ctx, t);
    }, opts);
    const double took = seconds_since(t0);
    std::printf("[ timing   ] throwing rank, check_shapes=%d: run_ranks returned after %.3f s (timeout 3 s)\n",
                check, took);
    EXPECT_LT(took, 3.0 + 0.6) << "check_shapes=" << check;
    if (check) {
      EXPECT_LT(took, 1.0);  // peers poll the failure flag: no need to wait for the timeout
    }
    for (const auto& o : out) {
      EXPECT_FALSE(o.ok);
      EXPECT_FALSE(o.hung);
    }
    expect_first_failure(out, 3, "boom from rank three");
    EXPECT_EQ(out[3].error, "rank 3 failed: boom from rank three");
    EXPECT_TRUE(contains(out[0].error, "; rank 0 aborted: ")) << out[0].error;
    if (check) {
      EXPECT_TRUE(contains(out[0].error, "all_reduce (group 'world', call #1)")) << out[0].error;
    }
    std::printf("[ message  ] %s\n", out[0].error.c_str());
  }
}

// A rank stuck in non-collective code: the others time out naming the collective and the missing
// rank; the watchdog reports the stuck rank as hung and run_ranks returns within timeout + grace.
TEST(ProcessGroupFailure, MissingRankTimesOutAndIsReportedHung) {
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto exited = std::make_shared<std::atomic<bool>>(false);
  auto opts = fast(2000);
  const auto t0 = Clock::now();
  auto out = sc::run_ranks(3, [release, exited](sc::RankContext& ctx) {
    if (ctx.rank == 1) {  // never joins: stuck until the test releases it
      const auto until = Clock::now() + std::chrono::seconds(20);
      while (!*release && Clock::now() < until) std::this_thread::sleep_for(milliseconds(5));
      *exited = true;
      return;
    }
    auto t = torch::ones({4, 64});
    sc::all_reduce_sum(ctx, t);
  }, opts);
  const double took = seconds_since(t0);
  *release = true;
  std::printf("[ timing   ] missing rank: run_ranks returned after %.3f s (timeout 2 s, grace 0.6 s)\n", took);
  EXPECT_GE(took, 2.0);
  EXPECT_LT(took, 2.0 + 0.6 + 0.3);
  EXPECT_TRUE(out[1].hung) << out[1].error;
  EXPECT_FALSE(out[1].ok);
  EXPECT_TRUE(contains(out[1].own_error, "outside any collective")) << out[1].own_error;
  const int first = out[0].first_failed_rank;
  EXPECT_TRUE(first == 0 || first == 2) << first;
  for (const auto& o : out) {
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.first_failed_rank, first);
    EXPECT_TRUE(contains(o.error, "waiting for rank 1 in all_reduce (group 'world', call #0) timed out after 2s"))
        << o.error;
  }
  std::printf("[ message  ] %s\n", out[1].error.c_str());
  // Let the detached thread finish before the next test.
  for (int i = 0; i < 400 && !*exited; ++i) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_TRUE(*exited);
}

TEST(ProcessGroupFailure, RankReturningWithoutJoiningIsNamedAtOnce) {
  const auto t0 = Clock::now();
  auto out = sc::run_ranks(2, [](sc::RankContext& ctx) {
    if (ctx.rank == 1) return;
    auto t = torch::ones({3});
    sc::barrier(ctx);
  }, fast(3000));
  EXPECT_LT(seconds_since(t0), 1.5);
  EXPECT_TRUE(out[1].ok);
  EXPECT_FALSE(out[0].ok);
  expect_first_failure(out, 0, "rank 1 has finished without joining barrier (group 'world', call #0)");
}

// Without the check, a missing rank makes Gloo itself time out; the error still names the call.
TEST(ProcessGroupFailure, UncheckedTimeoutNamesTheCollective) {
  auto opts = fast(1500);
  opts.check_shapes = false;
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto out = sc::run_ranks(2, [release](sc::RankContext& ctx) {
    if (ctx.rank == 1) {
      while (!*release) std::this_thread::sleep_for(milliseconds(5));
      return;
    }
    auto t = torch::ones({16});
    sc::all_reduce_sum(ctx, t);
  }, opts);
  *release = true;
  EXPECT_FALSE(out[0].ok);
  EXPECT_TRUE(contains(out[0].error, "all_reduce (group 'world', call #0) failed: ")) << out[0].error;
  std::printf("[ message  ] %s\n", out[0].error.c_str());
}

// A member that declared a group and then stopped because another rank failed must not leave
// the other members inside the backend's rendezvous for the whole timeout (it never joins it):
// they watch the failure flag while waiting there. Deterministic: rank 1 declares only after
// rank 0 has declared and ended, so it finds every declaration and enters the Gloo rendezvous.
// Before the fix this run took the full 120 s timeout (+ grace).
TEST(ProcessGroupFailure, FailureWhileMembersCreateAGroupReleasesThemPromptly) {
  auto opts = fast(120000);
  const auto t0 = Clock::now();
  auto out = sc::run_ranks(3, [](sc::RankContext& ctx) {
    if (ctx.rank == 2) throw std::runtime_error("boom outside the group");
    if (ctx.rank == 1) {
      // "sc/end/0": rank 0's function has returned (process_group.cpp's store layout).
      const auto until = Clock::now() + std::chrono::seconds(10);
      while (!ctx.store->check({"sc/end/0"}) && Clock::now() < until) std::this_thread::sleep_for(milliseconds(5));
    }
    sc::new_group(ctx, {0, 1}, "pair");
  }, opts);
  const double took = seconds_since(t0);
  std::printf("[ timing   ] failure during group creation: run_ranks returned after %.3f s (timeout 120 s)\n", took);
  EXPECT_LT(took, 20.0);
  for (const auto& o : out) {
    EXPECT_FALSE(o.ok);
    EXPECT_FALSE(o.hung) << o.error;
  }
  expect_first_failure(out, 2, "boom outside the group");
  EXPECT_TRUE(contains(out[1].own_error, "creation of group 'pair[0,1]'")) << out[1].own_error;
  EXPECT_TRUE(contains(out[1].own_error, "because rank 2 failed")) << out[1].own_error;
  std::printf("[ message  ] %s\n", out[1].error.c_str());
}

// A failure outside a group, published while the group's members are inside the backend's
// rendezvous (all of them committed to it), must not make some members leave it half-way: the
// ones already connecting to a member that left can wait for it for the whole timeout (seen in CI:
// rank 7 hung in 'stage[4,5,6,7]' for 150 s while stage 0 failed, in
// Harness.FailingPipelinePlanEndsWellWithinTheTimeout; whether the connect hangs or fails at once
// depends on Gloo's sockets). Deterministic part: rank 3 enters the rendezvous 300 ms after all
// members committed (the test hook) and rank 0 fails in between, while ranks 1 and 2 wait there
// for rank 3's address. The members must complete the group and stop at their next step; before
// the fix ranks 1 and 2 left the rendezvous (no group was created).
TEST(ProcessGroupFailure, OutsideFailureDuringARendezvousLeavesNoMemberHung) {
  auto opts = fast(4000);
  opts.before_rendezvous = [](int rank, const std::string& group) {
    if (rank == 3 && group == "trio[1,2,3]") std::this_thread::sleep_for(milliseconds(300));
  };
  auto created = std::make_shared<std::atomic<int>>(0);
  const auto t0 = Clock::now();
  auto out = sc::run_ranks(4, [created](sc::RankContext& ctx) {
    if (ctx.rank == 0) {
      // "sc/pg/<group>/commit/decision": the members' decision to enter the rendezvous.
      const auto until = Clock::now() + std::chrono::seconds(10);
      while (!ctx.store->check({"sc/pg/trio[1,2,3]/commit/decision"}) && Clock::now() < until)
        std::this_thread::sleep_for(milliseconds(2));
      std::this_thread::sleep_for(milliseconds(100));  // ranks 1 and 2 wait for rank 3 by now
      throw std::runtime_error("boom outside the group");
    }
    sc::new_group(ctx, {1, 2, 3}, "trio");
    ++*created;
    sc::barrier(ctx);  // the world: stops on rank 0's failure
  }, opts);
  const double took = seconds_since(t0);
  std::printf("[ timing   ] outside failure during a group's rendezvous: run_ranks returned after %.3f s (timeout 4 s)\n",
              took);
  EXPECT_LT(took, 2.5);
  EXPECT_EQ(created->load(), 3);
  for (const auto& o : out) {
    EXPECT_FALSE(o.ok);
    EXPECT_FALSE(o.hung) << o.error;
  }
  expect_first_failure(out, 0, "boom outside the group");
  EXPECT_TRUE(contains(out[3].own_error, "because rank 0 failed")) << out[3].own_error;
}

TEST(ProcessGroupFailure, RunTimeoutDetachesAStuckRank) {
  auto opts = fast(2000);
  opts.run_timeout = milliseconds(800);
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto exited = std::make_shared<std::atomic<bool>>(false);
  const auto t0 = Clock::now();
  auto out = sc::run_ranks(2, [release, exited](sc::RankContext& ctx) {
    if (ctx.rank == 0) {
      while (!*release) std::this_thread::sleep_for(milliseconds(5));
      *exited = true;
    }
  }, opts);
  *release = true;
  EXPECT_LT(seconds_since(t0), 0.8 + 0.6 + 0.3);
  EXPECT_TRUE(out[0].hung);
  EXPECT_TRUE(out[1].ok);
  EXPECT_EQ(out[1].first_failed_rank, 0);
  EXPECT_TRUE(contains(out[0].error, "run timeout")) << out[0].error;
  for (int i = 0; i < 400 && !*exited; ++i) std::this_thread::sleep_for(milliseconds(5));
}

// ---- shape checking -------------------------------------------------------------------------------

TEST(ProcessGroupCheck, ShapeMismatchIsACleanErrorOnEveryRank) {
  auto out = sc::run_ranks(2, [](sc::RankContext& ctx) {
    auto t = torch::ones({4, ctx.rank == 0 ? 64 : 32});
    sc::all_reduce_sum(ctx, t);  // Gloo would abort the process here
  }, fast());
  const std::string want = "collective mismatch in all_reduce: rank 0 has [4, 64] float, rank 1 has [4, 32] float";
  for (const auto& o : out) {
    EXPECT_FALSE(o.ok);
    EXPECT_TRUE(contains(o.own_error, want)) << o.own_error;  // each rank saw it itself
    EXPECT_TRUE(contains(o.error, want)) << o.error;
  }
  std::printf("[ message  ] %s\n", out[1].error.c_str());
}

TEST(ProcessGroupCheck, DtypeOpAndRootMismatches) {
  auto out = sc::run_ranks(3, [](sc::RankContext& ctx) {
    auto t = torch::ones({5}, ctx.rank == 2 ? torch::kBFloat16 : torch::kFloat);
    sc::all_gather(ctx, t);
  }, fast());
  for (const auto& o : out)
    EXPECT_TRUE(contains(o.own_error, "collective mismatch in all_gather: ranks 0, 1 have [5] float, rank 2 has [5] bfloat16"))
        << o.own_error;

  out = sc::run_ranks(2, [](sc::RankContext& ctx) {
    auto t = torch::ones({5});
    if (ctx.rank == 0) sc::all_reduce_sum(ctx, t);
    else sc::broadcast(ctx, t, 0);
  }, fast());
  for (const auto& o : out)
    EXPECT_TRUE(contains(o.own_error, "collective mismatch (group 'world', call #0): rank 0 calls all_reduce with "
                                      "[5] float, rank 1 calls broadcast with [5] float from rank 0"))
        << o.own_error;

  out = sc::run_ranks(2, [](sc::RankContext& ctx) {
    auto t = torch::ones({5});
    sc::broadcast(ctx, t, ctx.rank);  // each thinks it is the root
  }, fast());
  for (const auto& o : out)
    EXPECT_TRUE(contains(o.own_error, "rank 0 has [5] float from rank 0, rank 1 has [5] float from rank 1"))
        << o.own_error;
}

TEST(ProcessGroupCheck, SendRecvMismatchAndGroupDeclarationMismatch) {
  auto out = sc::run_ranks(2, [](sc::RankContext& ctx) {
    if (ctx.rank == 0) {
      sc::send(ctx, torch::ones({4, 8}), 1);
    } else {
      auto t = torch::empty({4, 16});
      sc::recv(ctx, t, 0);
    }
  }, fast());
  expect_first_failure(out, 1, "send/recv mismatch: rank 0 sends [4, 8] float (tag 0) to rank 1, rank 1 expects [4, 16] float (tag 0)");

  out = sc::run_ranks(3, [](sc::RankContext& ctx) {
    // Rank 1 disagrees about its group.
    std::vector<int> mine = ctx.rank == 1 ? std::vector<int>{1, 2} : std::vector<int>{0, 1};
    if (ctx.rank == 2) mine = {1, 2};
    sc::new_group(ctx, mine, "tp");
  }, fast());
  EXPECT_FALSE(sc::all_ok(out));
  bool named = false;
  for (const auto& o : out) named = named || contains(o.error, "group mismatch for tag 'tp'");
  EXPECT_TRUE(named) << sc::describe_failures(out);
  std::printf("[ message  ] %s\n", out[0].error.c_str());
}

TEST(ProcessGroupCheck, BadGroupArgumentsArePlanErrors) {
  auto out = sc::run_ranks(2, [](sc::RankContext& ctx) {
    try {
      sc::new_group(ctx, {0, 5}, "tp");
    } catch (const sc::PlanError& e) {
      if (!contains(e.what(), "outside the world of 2")) throw;
    }
    try {
      sc::new_group(ctx, {1 - ctx.rank}, "tp");
    } catch (const sc::PlanError& e) {
      if (!contains(e.what(), "must only create its own group")) throw;
    }
  }, fast());
  EXPECT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
}

// The signature exchange costs store round trips: measure it against the unchecked path.
// Rounds alternate between the two modes; each mode reports its best round (less noise from
// other load on the machine).
TEST(ProcessGroupCheck, CheckOverheadIsLogged) {
  for (int world : {2, 4}) {
    std::map<bool, double> best{{false, 1e30}, {true, 1e30}};
    for (int round = 0; round < 3; ++round) {
      for (bool check : {false, true}) {
        auto opts = fast();
        opts.check_shapes = check;
        const int iters = 100;
        auto per_call = std::make_shared<std::vector<double>>(world);
        auto out = sc::run_ranks(world, [iters, per_call](sc::RankContext& ctx) {
          auto t = torch::ones({64});
          for (int i = 0; i < 10; ++i) sc::all_reduce_sum(ctx, t);  // warm up
          sc::barrier(ctx);
          const auto t0 = Clock::now();
          for (int i = 0; i < iters; ++i) sc::all_reduce_sum(ctx, t);
          (*per_call)[ctx.rank] = seconds_since(t0) / iters * 1e6;
        }, opts);
        ASSERT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
        best[check] = std::min(best[check], *std::max_element(per_call->begin(), per_call->end()));
      }
    }
    std::printf("[ overhead ] all_reduce [64] float, %d thread-ranks, %u hardware threads: unchecked %.1f us/call, "
                "checked %.1f us/call (%+.1f us), best of 3 rounds of 100\n",
                world, std::thread::hardware_concurrency(), best[false], best[true], best[true] - best[false]);
  }
}

// ---- backends and torchrun mode ------------------------------------------------------------------

TEST(ProcessGroupBackend, NcclIsAClearErrorWithoutCudaOrNccl) {
  auto opts = fast();
  opts.backend = "nccl";
  if (!sc::nccl_available()) {
    try {
      sc::run_ranks(2, [](sc::RankContext&) {}, opts);
      FAIL() << "nccl must be refused";
    } catch (const sc::PlanError& e) {
      EXPECT_TRUE(contains(e.what(), "nccl")) << e.what();
      std::printf("[ message  ] %s\n", e.what());
    }
  } else {
    // GPU build: one rank per visible GPU works; one more is refused up front.
    const int n = static_cast<int>(torch::cuda::device_count());
    auto out = sc::run_ranks(n, [](sc::RankContext& ctx) {
      auto t = torch::ones({8}, torch::TensorOptions().device(ctx.device)) * (ctx.rank + 1);
      sc::all_reduce_sum(ctx, t);
      const int w = ctx.world;
      if (t.cpu()[0].item<float>() != w * (w + 1) / 2) throw std::runtime_error("nccl sum");
      auto parts = sc::all_gather(ctx, t);
      sc::barrier(ctx);
    }, opts);
    EXPECT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
    EXPECT_THROW(sc::run_ranks(n + 1, [](sc::RankContext&) {}, opts), sc::PlanError);
  }
  opts.backend = "mpi";
  EXPECT_THROW(sc::run_ranks(2, [](sc::RankContext&) {}, opts), sc::PlanError);
  EXPECT_THROW(sc::run_ranks(0, [](sc::RankContext&) {}, fast()), sc::PlanError);
}

TEST(ProcessGroupEnv, EnvironmentErrorsNameTheVariable) {
  std::map<std::string, std::string> env{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                         {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  auto parse = [&] {
    return sc::parse_env_rank([&](const std::string& k) -> std::optional<std::string> {
      auto it = env.find(k);
      if (it == env.end()) return std::nullopt;
      return it->second;
    });
  };
  auto ok = parse();
  EXPECT_EQ(ok.rank, 1);
  EXPECT_EQ(ok.world, 4);
  EXPECT_EQ(ok.master_port, 29500);
  auto expect_error = [&](const std::string& key, const std::string& value, const std::string& part) {
    auto saved = env;
    if (value == "(unset)")
      env.erase(key);
    else
      env[key] = value;
    try {
      parse();
      ADD_FAILURE() << key << "=" << value << " accepted";
    } catch (const sc::PlanError& e) {
      EXPECT_EQ(e.key(), key);
      EXPECT_TRUE(contains(e.what(), value)) << e.what();
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
    env = saved;
  };
  expect_error("RANK", "(unset)", "not set");
  expect_error("RANK", "4", "out of range");
  expect_error("RANK", "one", "not an integer");
  expect_error("WORLD_SIZE", "0", "out of range");
  expect_error("WORLD_SIZE", "2x", "not an integer");
  expect_error("MASTER_PORT", "70000", "out of range");
  expect_error("MASTER_ADDR", "(unset)", "not set");
  expect_error("LOCAL_RANK", "-1", "out of range");
  // This test binary is not started by torchrun.
  if (!std::getenv("RANK")) {
    EXPECT_FALSE(sc::launched_by_torchrun());
  }
}

// run_env_rank over a real TCPStore (rank 0 serves it): each "process" is a thread here.
TEST(ProcessGroupEnv, TcpStoreRanksReduceAndReportFailures) {
  const int port = free_tcp_port();
  ASSERT_GT(port, 0);
  for (bool fail : {false, true}) {
    const int world = 3;
    std::vector<sc::RankOutcome> out(world);
    std::vector<std::thread> procs;
    for (int r = 0; r < world; ++r) {
      procs.emplace_back([&, r] {
        sc::EnvRank e;
        e.rank = e.local_rank = r;
        e.world = world;
        e.master_addr = "127.0.0.1";
        e.master_port = port;
        out[r] = sc::run_env_rank(e, [fail](sc::RankContext& ctx) {
          auto t = torch::full({6}, static_cast<float>(ctx.rank));
          sc::all_reduce_sum(ctx, t);
          if (t[0].item<float>() != 3) throw std::runtime_error("tcp sum");
          if (fail && ctx.rank == 2) throw std::runtime_error("rank two gives up");
          sc::barrier(ctx);
        }, fast());
      });
    }
    for (auto& p : procs) p.join();
    if (!fail) {
      EXPECT_TRUE(sc::all_ok(out)) << sc::describe_failures(out);
    } else {
      expect_first_failure(out, 2, "rank two gives up");
      EXPECT_TRUE(contains(out[0].error, "rank 0 aborted")) << out[0].error;
    }
  }
}

// Fault injection: the store becomes unreachable mid-run. The ranks meet through a TCPStore that
// the test serves, as torchrun's agent does (TORCHELASTIC_USE_AGENT_STORE); after one good
// collective the test shuts the server down, as when the agent or the store host dies. Every rank
// must end within timeout + grace with an outcome naming itself and the lost store.
TEST(ProcessGroupFault, StoreBecomesUnreachable) {
  const int port = free_tcp_port();
  ASSERT_GT(port, 0);
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = true;
  so.waitWorkers = false;
  so.timeout = milliseconds(2000);
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  const int world = 3;
  std::atomic<int> first_done{0};
  std::atomic<bool> store_gone{false};
  std::vector<sc::RankOutcome> out(world);
  const auto opts = fast(2000);
  std::vector<std::thread> procs;
  for (int r = 0; r < world; ++r) {
    procs.emplace_back([&, r] {
      sc::EnvRank e;
      e.rank = e.local_rank = r;
      e.world = world;
      e.master_addr = "127.0.0.1";
      e.master_port = port;
      e.agent_store = true;
      out[r] = sc::run_env_rank(e, [&](sc::RankContext& ctx) {
        auto t = torch::ones({8});
        sc::all_reduce_sum(ctx, t);
        ++first_done;
        while (!store_gone) std::this_thread::sleep_for(milliseconds(2));
        sc::all_reduce_sum(ctx, t);  // the signature exchange needs the store
      }, opts);
    });
  }
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (first_done < world && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
  ASSERT_EQ(first_done.load(), world);
  server.reset();  // the only reference: the server stops and closes its connections
  const auto t0 = Clock::now();
  store_gone = true;
  for (auto& p : procs) p.join();
  const double took = seconds_since(t0);
  std::printf("[ timing   ] store gone: every rank returned after %.3f s (timeout 2 s, grace 0.6 s)\n", took);
  EXPECT_LT(took, 2.0 + 0.6);
  const std::string where = "torchrun's agent store at 127.0.0.1:" + std::to_string(port);
  for (int r = 0; r < world; ++r) {
    const auto& o = out[r];
    EXPECT_FALSE(o.ok) << "rank " << r;
    EXPECT_FALSE(o.hung) << o.error;
    const std::string head = "rank " + std::to_string(r) + " failed: lost " + where + " in all_reduce (group 'world', call #1): ";
    EXPECT_EQ(o.error.rfind(head, 0), 0u) << o.error;
    std::printf("[ message  ] %s\n", o.error.c_str());
  }
}

// Fault injection: ranks disagree on a tensor's shape in the middle of a run (after agreeing on
// earlier calls): every rank ends at once with the same report naming each rank's shape.
TEST(ProcessGroupFault, ShapeDisagreementMidRunEndsEveryRank) {
  const auto t0 = Clock::now();
  auto out = sc::run_ranks(4, [](sc::RankContext& ctx) {
    for (int step = 0; step < 3; ++step) {
      auto t = torch::ones({2, step == 2 && ctx.rank == 2 ? 6 : 8});
      sc::all_reduce_sum(ctx, t);
    }
  }, fast(3000));
  EXPECT_LT(seconds_since(t0), 1.5);
  for (const auto& o : out) {
    EXPECT_FALSE(o.ok);
    EXPECT_FALSE(o.hung);
    EXPECT_TRUE(contains(o.error, "collective mismatch in all_reduce: ranks 0, 1, 3 have [2, 8] float, rank 2 has "
                                  "[2, 6] float (group 'world', call #2)")) << o.error;
  }
}

// Real processes: skipped unless this binary runs under torchrun, e.g.
//   torchrun --standalone --nproc-per-node=2 --no-python ./sc_tests_torch
//            --gtest_filter=ProcessGroupEnv.UnderTorchrun
TEST(ProcessGroupEnv, UnderTorchrun) {
  if (!sc::launched_by_torchrun()) GTEST_SKIP() << "not started by torchrun";
  const auto env = sc::read_env_rank();
  std::printf("[ torchrun ] rank %d of %d, local %d, store %s:%d%s\n", env.rank, env.world, env.local_rank,
              env.master_addr.c_str(), env.master_port, env.agent_store ? " (agent store)" : "");
  auto out = sc::run_env_rank([](sc::RankContext& ctx) {
    auto t = torch::full({4}, static_cast<float>(ctx.rank + 1));
    sc::all_reduce_sum(ctx, t);
    const int w = ctx.world;
    if (t[0].item<float>() != w * (w + 1) / 2) throw std::runtime_error("torchrun sum");
    const int base = ctx.rank - ctx.rank % 2;
    std::vector<int> members{base};
    if (base + 1 < w) members.push_back(base + 1);
    sc::Group pair = sc::new_group(ctx, members, "pair");
    auto one = torch::ones({1});
    sc::all_reduce_sum(pair, one);
    if (one.item<float>() != pair.size()) throw std::runtime_error("pair sum");
    sc::barrier(ctx);
  }, fast());
  EXPECT_TRUE(out.ok) << out.error;
  // A second run in the same job gets its own key space; rank 1 fails in it.
  out = sc::run_env_rank([](sc::RankContext& ctx) {
    if (ctx.rank == 1) throw std::runtime_error("rank one fails under torchrun");
    sc::barrier(ctx);
  }, fast());
  if (env.world > 1) {
    EXPECT_FALSE(out.ok);
    EXPECT_EQ(out.first_failed_rank, 1) << out.error;
    EXPECT_TRUE(contains(out.error, "rank one fails under torchrun")) << out.error;
    std::printf("[ torchrun ] rank %d: %s\n", env.rank, out.error.c_str());
  }
}

}  // namespace
