// Steering evaluation (CAA-style A/B): add multiplier x vector to the residual stream at one layer
// from the instruction end onward, read the next-token logits after the prefilled "(" and compare
// the matching and the non-matching answer letters.
//
// Metrics per (layer, multiplier), averaged over examples:
//   logit_diff = logit(match letter) - logit(non-matching letter) at the last prompt position
//                (TransformerLens' logit difference);
//   p_match    = p(match) / (p(A) + p(B)) as CAA reports it; with two letters this is exactly
//                sigmoid(logit_diff) (the softmax normaliser cancels), computed that way in fp64.
// Per layer the steerability slope is the least-squares slope of mean logit_diff over multipliers.
//
// Cost. Steering at layer L from the instruction end onward changes nothing before the
// instruction end (causal attention) and nothing up to layer L's output. The cached sweep (the
// default) therefore runs, per batch of examples, one full forward (RankSession::prefill) that keeps
// every layer's keys / values of the prefix columns and every layer's output at the suffix columns,
// then passes (RankSession::resume) of only the suffix columns, all multipliers at once as copies of
// the batch (rows m-major: row = m * b + i), attending to the cached prefix keys / values (one copy,
// shared by every row of an example). One pass serves many steered layers as a wavefront: layer L's
// rows join right after layer L, so each later layer runs once over every layer's rows that have
// joined, instead of once per steered layer (as many layers per pass as keep it within
// max_pass_tokens suffix tokens). The head reads only the two answer letters' logits.
// Padded batches (left padding): rows have different instruction ends; the split column is the
// smallest padded instruction end of the batch, and each suffix column of a row is steered only
// from that row's own instruction end (columns of the suffix before it get multiplier 0, which is
// exactly the unsteered value: they see no steered column). With CAA prompts the assistant header
// has the same length in every row, so after left padding every row's instruction end is the same
// column and the suffix is just the header.
// The naive sweep (EvalOptions::cached = false) runs layers x batches full forwards of
// batch_size x multipliers rows with the vector added through the harness's layer hook; both give
// the same numbers (tests/torch/test_steering.cpp: to 1e-10 in fp64).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include "harness/executor.h"
#include "models/dataset.h"
#include "models/tokenizer.h"

namespace sc {

struct EvalExample {
  std::vector<TokenId> prompt;  // chat-formatted question + "(": the next token is the letter
  int64_t instruction_end = 0;  // first token index that is steered (the assistant turn's start)
  TokenId match = -1, nonmatch = -1;  // token ids of the letters alone ("A", "B")
};

// From a CAA dataset (DatasetError naming the file when an example has no eval prompt, e.g. a
// pairs JSONL file). The instruction ends where "<|im_start|>assistant" begins. `map_id`, when
// given, is applied to every id (tiny random models whose vocab is smaller than the tokenizer's).
std::vector<EvalExample> make_eval_examples(const Dataset& ds, const Tokenizer& tok,
                                            const std::function<TokenId(TokenId)>& map_id = nullptr);

struct EvalOptions {
  std::vector<int64_t> layers;       // empty: every layer that has a vector
  std::vector<double> multipliers = {-2, -1, 0, 1, 2};
  int64_t batch_size = 8;            // examples per forward (x multipliers rows)
  TokenId pad_id = 0;
  bool cached = true;                // prefix KV cache + suffix-only passes; false: full forwards
  int64_t max_pass_tokens = 65536;   // cached sweep: suffix tokens of one pass (its memory), >= 1
  std::function<void(int64_t done, int64_t total)> progress;  // forwards done (global rank 0)
};

struct LayerEval {
  int64_t layer = 0;
  std::vector<double> multipliers;
  std::vector<double> logit_diff;                     // mean over examples, per multiplier
  std::vector<double> p_match;                        // mean over examples, per multiplier
  std::vector<std::vector<double>> example_logit_diff;  // [multiplier][example]
  double slope = 0;                                   // d logit_diff / d multiplier (least squares)
};

struct EvalResult {
  std::vector<LayerEval> layers;
  int64_t num_examples = 0;
  int64_t best_layer = -1;  // largest slope
  double seconds = 0;
  // Work: token x decoder-layer evaluations run (padded columns included), and what the naive
  // sweep (layers x batches full forwards of batch x multipliers rows) runs for the same result.
  bool cached = true;
  int64_t token_layers = 0, naive_token_layers = 0;
  double work_ratio() const { return token_layers > 0 ? double(naive_token_layers) / double(token_layers) : 0.0; }
};

// vectors: layer -> [H] (any float dtype, CPU). Throws std::invalid_argument for a layer without a
// vector or an empty example list, std::runtime_error when a rank fails.
EvalResult evaluate(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec,
                    const std::vector<EvalExample>& examples, const std::map<int64_t, at::Tensor>& vectors,
                    const EvalOptions& options = {});

// Least-squares slope of y over x (0 when x has no spread).
double least_squares_slope(const std::vector<double>& x, const std::vector<double>& y);

void to_json(nlohmann::json& j, const LayerEval& e);
void to_json(nlohmann::json& j, const EvalResult& r);
std::string eval_csv(const EvalResult& r);  // layer,multiplier,logit_diff,p_match

}  // namespace sc
