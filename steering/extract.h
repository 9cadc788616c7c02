// Steering-vector extraction: batched, all layers in one forward per side, streaming mean difference.
//
// For every batch of contrast examples we run two forwards through the harness (the same code
// single-device and sharded): the positive prompts and the negative prompts, each left-padded with
// an attention mask and HF generate-style positions. Each forward captures every decoder layer's
// output (the residual stream, HF hidden_states[L + 1]) at one read position per row only, so no
// [B, S, H] activation is ever kept. Per layer we accumulate sum(pos - neg) in fp64 and divide by N
// at the end (CAA's mean difference). With `pca`, the per-example differences [N, H] are kept per
// layer (only then) and the first principal component is computed (see SteeringResult::pca).
// Under PP each stage's reporting rank (stage rank 0) contributes the layers it runs; TP / EP ranks
// of one stage hold identical replicated layer outputs, so only the reporting rank is read.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "harness/executor.h"
#include "models/dataset.h"

namespace sc {

struct ExtractProgress {
  int64_t batches_done = 0, batches_total = 0;
  int64_t examples_done = 0;
  double tokens_per_s = 0;  // real (unpadded) tokens of both sides per second of wall time
  double eta_s = 0;
};

struct ExtractOptions {
  int64_t batch_size = 8;
  TokenId pad_id = 0;   // used only in padding columns (masked out)
  bool pca = false;     // also compute the first principal component per layer
  std::function<void(const ExtractProgress&)> progress;  // called on global rank 0 after each batch
};

struct SteeringResult {
  int64_t num_examples = 0, hidden_size = 0;
  std::vector<int64_t> layers;              // 0-based HF decoder layer indices, ascending
  std::map<int64_t, at::Tensor> mean_diff;  // layer -> [H] fp64 CPU: mean over examples of pos - neg
  // layer -> [H] fp64 CPU, unit norm: top right-singular vector of the uncentered difference matrix
  // D [N, H] (the direction that explains most of sum_i (d_i . v)^2), sign chosen so that
  // v . mean_diff >= 0. Uncentered on purpose: centering would remove the mean difference, which
  // is the signal. Only with ExtractOptions::pca.
  std::map<int64_t, at::Tensor> pca;
  std::map<int64_t, double> pca_explained;  // fraction of sum ||d_i||^2 along the component
  int64_t tokens = 0;                       // real tokens processed (both sides)
  double seconds = 0;                       // the whole extraction: start-up, weights, batches
  // Where the time went (global rank 0): loading or generating its weights (0 when a kept load was
  // reused), and each batch (both sides, until its layer outputs are on the host).
  double load_seconds = 0;
  std::vector<double> batch_seconds;
  // The vector to steer with: pca (scaled to the mean difference's projection) or mean_diff.
  at::Tensor direction(int64_t layer, bool use_pca = false) const;
};

// Throws std::invalid_argument on an empty dataset or a read position outside its prompt, and
// std::runtime_error (with every rank's error) when a rank fails.
SteeringResult extract(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec,
                       const std::vector<TokenizedExample>& examples, const ExtractOptions& options = {});

// Helpers shared with evaluation and tests.
// Left-pads `seqs` into RunInputs (mask, positions_from_mask = true). pad_count[i] receives the
// number of padding columns of row i.
RunInputs padded_inputs(const std::vector<std::vector<TokenId>>& seqs, TokenId pad_id,
                        std::vector<int64_t>* pad_count = nullptr);

}  // namespace sc
