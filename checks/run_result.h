// RunResult: what the harness observed when it actually ran a plan on ranks (plain data, JSON
// form, torch-free so reports and the gate can read it without LibTorch).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layout/plan.h"

namespace sc {

// One rank's caught exception.
struct RankError {
  int64_t rank = 0;
  std::string where;  // e.g. "layer 0 self_attn (k view)"
  std::string what;   // the exception text (for view errors exactly LibTorch's)
};

// Comparison of one captured tensor (a layer's output, the logits) with the reference.
struct TensorComparison {
  std::string name;          // "layer 3", "logits"
  int64_t layer = -1;
  double nmse = 0;           // sum((a-b)^2) / sum(b^2)
  double max_abs = 0;
  int64_t tokens = 0;
  int64_t tokens_diverged = 0;  // tokens whose row error exceeds the dtype tolerance
  int64_t router_flips = 0;     // tokens whose chosen experts differ from the reference (this layer)
  int64_t router_flips_benign = 0;  // ... explained by a near-tie of the router logits
};

// Where a sharded run first differs from the reference (harness/localise.h): the first point in
// forward order at which some rank's tensor (a slice, a partial sum before a collective, or a
// reduced output) differs from what the reference computes for that rank.
struct Localisation {
  int64_t layer = -1;           // -1: the head (final norm, lm_head) or no layer
  std::string module;           // "self_attn.k_proj", "mlp.experts", "model.norm", "micro-batch assembly", ...
  std::string point;            // what was compared there: "k_proj output", "o_proj partial sum (before all_reduce)"
  std::vector<int64_t> ranks;   // exactly the ranks whose tensor differs there
  std::vector<int64_t> experts; // mlp.experts: the expert ids whose contribution is wrong
  int64_t stage = -1;           // pipeline stage of the ranks (-1: several)
  int64_t tokens = 0;           // tokens that differ there (on the first named rank)
  int64_t tokens_compared = 0;  // tokens compared there (valid, not downstream of a benign flip)
  double worst_rel = 0;         // largest per-token relative error there
  std::string detail;           // extra evidence, e.g. "shape [2, 5, 2, 8] where the reference slice is [2, 5, 1, 8]"
  bool found() const { return !module.empty(); }
  std::string describe() const;  // "layer 1 self_attn.k_proj on rank 3 (k_proj output): 9 of 32 tokens differ, ..."
};

enum class Verdict {
  Match,            // within the dtype's tolerance everywhere
  BenignRouterFlip, // differences explained only by top-k near-tie flips
  Mismatch,         // a real difference: names layer, module, rank
  Error,            // a rank raised
};
const char* verdict_name(Verdict v);

struct RunResult {
  std::string model;          // config name or checkpoint path
  ParallelPlan plan;
  std::string backend;        // "gloo", "nccl", "local"
  std::string device;         // "cpu", "cuda"
  Verdict verdict = Verdict::Match;
  std::string summary;        // one line for humans
  std::vector<RankError> errors;
  std::vector<TensorComparison> comparisons;  // every layer, then logits
  std::string first_divergence;  // "layer 1 mlp.experts on rank 3 ...", "" when none
  Localisation localisation;     // the first differing point, when the run was observed per rank
  int64_t points_compared = 0;   // rank x tensor comparisons made by the localisation
  double tolerance_nmse = 0;     // the dtype's tolerance used
  // Measured.
  std::vector<int64_t> load_peak_bytes;  // per rank, while loading
  std::vector<int64_t> bytes_read;       // per rank, from the checkpoint
  double forward_ms = 0;                 // sharded forward, wall clock, median
  double reference_ms = 0;               // single-device forward
  double tokens_per_s = 0;
  // "" when the run's model has the widths of the config it names; otherwise how it was reduced
  // (report --run: "tiny width: hidden 256 (of 4096), ..."): its throughput and memory are those
  // of the reduced model, its outcome and error texts those of the real geometry.
  std::string scale;
  bool ok() const { return verdict == Verdict::Match || verdict == Verdict::BenignRouterFlip; }
};

void to_json(nlohmann::json& j, const Localisation& l);
void from_json(const nlohmann::json& j, Localisation& l);
void to_json(nlohmann::json& j, const RankError& e);
void from_json(const nlohmann::json& j, RankError& e);
void to_json(nlohmann::json& j, const TensorComparison& c);
void from_json(const nlohmann::json& j, TensorComparison& c);
void to_json(nlohmann::json& j, const RunResult& r);
void from_json(const nlohmann::json& j, RunResult& r);

}  // namespace sc
