#include "steering/extract.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <stdexcept>

#include <torch/torch.h>

namespace sc {

RunInputs padded_inputs(const std::vector<std::vector<TokenId>>& seqs, TokenId pad_id,
                        std::vector<int64_t>* pad_count) {
  const PaddedBatch pb = pad_left(seqs, pad_id);
  RunInputs in;
  auto opts = at::TensorOptions().dtype(at::kLong);
  in.input_ids = at::tensor(pb.input_ids, opts).view({pb.batch, pb.seq_len});
  in.attention_mask = at::tensor(pb.attention_mask, opts).view({pb.batch, pb.seq_len});
  in.positions_from_mask = true;
  if (pad_count) {
    pad_count->resize(size_t(pb.batch));
    for (int64_t r = 0; r < pb.batch; ++r) (*pad_count)[size_t(r)] = pb.pad_count(r);
  }
  return in;
}

at::Tensor SteeringResult::direction(int64_t layer, bool use_pca) const {
  auto m = mean_diff.find(layer);
  if (m == mean_diff.end()) throw std::out_of_range("no steering vector for layer " + std::to_string(layer));
  if (!use_pca) return m->second;
  auto p = pca.find(layer);
  if (p == pca.end()) throw std::out_of_range("no PCA direction for layer " + std::to_string(layer) + " (extract with pca)");
  // Unit direction scaled by the mean difference's projection onto it: same units as mean_diff.
  return p->second * at::dot(p->second, m->second);
}

namespace {

// One side of a batch: padded inputs and the padded read column of every row.
struct Side {
  RunInputs in;
  at::Tensor read;  // [B] int64
  int64_t tokens = 0;
};

Side make_side(const std::vector<TokenizedExample>& ex, size_t b0, size_t b1, bool positive, TokenId pad, int64_t vocab) {
  std::vector<std::vector<TokenId>> seqs;
  std::vector<int64_t> reads;
  Side s;
  for (size_t i = b0; i < b1; ++i) {
    const auto& ids = positive ? ex[i].positive : ex[i].negative;
    const int64_t r = positive ? ex[i].positive_read : ex[i].negative_read;
    if (ids.empty() || r < 0 || r >= int64_t(ids.size()))
      throw std::invalid_argument("example " + std::to_string(i) + ": " + (positive ? "positive" : "negative") +
                                  " read position " + std::to_string(r) + " outside its " +
                                  std::to_string(ids.size()) + " tokens");
    for (TokenId t : ids)
      if (t < 0 || t >= vocab)
        throw std::invalid_argument("example " + std::to_string(i) + ": token id " + std::to_string(t) +
                                    " outside the model's vocab of " + std::to_string(vocab));
    seqs.push_back(ids);
    reads.push_back(r);
    s.tokens += int64_t(ids.size());
  }
  std::vector<int64_t> pads;
  s.in = padded_inputs(seqs, pad, &pads);
  for (size_t k = 0; k < reads.size(); ++k) reads[k] += pads[k];
  s.read = at::tensor(reads, at::TensorOptions().dtype(at::kLong));
  return s;
}

}  // namespace

SteeringResult extract(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec,
                       const std::vector<TokenizedExample>& examples, const ExtractOptions& options) {
  if (examples.empty()) throw std::invalid_argument("steering extraction: the dataset has no examples");
  const int64_t bs = std::max<int64_t>(1, options.batch_size);
  const int64_t N = int64_t(examples.size());
  const int64_t n_batches = (N + bs - 1) / bs;
  const auto t0 = std::chrono::steady_clock::now();

  std::mutex mu;
  std::map<int64_t, at::Tensor> sums;                     // layer -> [H] fp64
  std::map<int64_t, std::vector<at::Tensor>> diff_parts;  // layer -> [b, H] fp64 chunks (pca only)
  int64_t tokens = 0;

  // Padded inputs of every batch, built (and validated) before any rank starts; shared read-only.
  std::vector<Side> pos_sides, neg_sides;
  for (int64_t b = 0; b < n_batches; ++b) {
    const size_t b0 = size_t(b * bs), b1 = size_t(std::min(N, (b + 1) * bs));
    pos_sides.push_back(make_side(examples, b0, b1, true, options.pad_id, c.vocab_size));
    neg_sides.push_back(make_side(examples, b0, b1, false, options.pad_id, c.vocab_size));
  }

  CaptureSpec cap;
  cap.all_layers = true;
  const bool torchrun = torchrun_job();
  std::vector<double> batch_seconds;
  std::vector<LoadStats> load_stats;
  auto outcomes = run_sessions(c, p, spec, [&](RankSession& s) {
    auto tb = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < n_batches; ++b) {
      const size_t b1 = size_t(std::min(N, (b + 1) * bs));
      const Side& pos = pos_sides[size_t(b)];
      const Side& neg = neg_sides[size_t(b)];
      CaptureSpec cp = cap, cn = cap;
      cp.positions = pos.read;
      cn.positions = neg.read;
      s.where = "extraction batch " + std::to_string(b) + " (positive)";
      RankSession::Output op = s.forward(pos.in, cp);
      s.where = "extraction batch " + std::to_string(b) + " (negative)";
      RankSession::Output on = s.forward(neg.in, cn);
      if (s.reports()) {
        // Layer outputs at the read position: [b, 1, H]; the difference is taken in fp64.
        std::lock_guard<std::mutex> g(mu);
        for (auto& [layer, hp] : op.layer_out) {
          const at::Tensor d = hp.to(at::kCPU, at::kDouble).squeeze(1) - on.layer_out.at(layer).to(at::kCPU, at::kDouble).squeeze(1);
          at::Tensor& acc = sums[layer];
          acc = acc.defined() ? acc + d.sum(0) : d.sum(0);
          if (options.pca) diff_parts[layer].push_back(d);
        }
      }
      if (s.ctx.rank == 0) {
        std::lock_guard<std::mutex> g(mu);
        const auto now = std::chrono::steady_clock::now();
        batch_seconds.push_back(std::chrono::duration<double>(now - tb).count());
        tb = now;
        tokens += pos.tokens + neg.tokens;
        if (options.progress) {
          const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          ExtractProgress pr;
          pr.batches_done = b + 1;
          pr.batches_total = n_batches;
          pr.examples_done = int64_t(b1);
          pr.tokens_per_s = el > 0 ? double(tokens) / el : 0;
          pr.eta_s = el / double(b + 1) * double(n_batches - b - 1);
          options.progress(pr);
        }
      }
    }
    // torchrun (one rank per process): each stage's reporting rank sends its layers' sums (and PCA
    // parts) to rank 0 through the launch's store; rank 0 holds the whole result.
    if (torchrun && p.world_size() > 1) {
      const int64_t S = p.stage_size();
      if (s.ctx.rank != 0 && s.reports()) {
        std::vector<std::pair<std::string, at::Tensor>> named;
        for (auto& [layer, sum] : sums) named.emplace_back("sum/" + std::to_string(layer), sum);
        for (auto& [layer, parts] : diff_parts)
          for (size_t i = 0; i < parts.size(); ++i)
            named.emplace_back("diff/" + std::to_string(layer) + "/" + std::to_string(i), parts[i]);
        store_set(s.ctx, "sc/steer/sums/" + std::to_string(s.ctx.rank), pack_tensors(named));
      }
      if (s.ctx.rank == 0) {
        for (int64_t st = 1; st < p.pp; ++st) {
          const std::string bytes = wait_and_get(s.ctx, "sc/steer/sums/" + std::to_string(st * S), spec.launch.timeout);
          std::map<int64_t, std::map<int64_t, at::Tensor>> parts;
          for (auto& [name, t] : unpack_tensors(bytes)) {
            const size_t a = name.find('/'), b = name.find('/', a + 1);
            const int64_t layer = std::stoll(name.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1));
            if (name.rfind("sum/", 0) == 0) sums[layer] = t;
            else parts[layer][std::stoll(name.substr(b + 1))] = t;
          }
          for (auto& [layer, byi] : parts)
            for (auto& [i, t] : byi) diff_parts[layer].push_back(t);
        }
      }
    }
    s.where = "done";
  }, &load_stats);
  if (!all_ok(outcomes)) throw std::runtime_error("steering extraction failed: " + describe_failures(outcomes));

  SteeringResult r;
  r.num_examples = N;
  r.hidden_size = c.hidden_size;
  r.tokens = tokens;
  r.batch_seconds = batch_seconds;
  if (!load_stats.empty()) r.load_seconds = load_stats[0].seconds;
  for (auto& [layer, sum] : sums) {
    r.layers.push_back(layer);
    r.mean_diff[layer] = sum / double(N);
    if (!options.pca) continue;
    const at::Tensor D = at::cat(diff_parts[layer], 0);  // [N, H]
    auto [U, S, Vh] = at::linalg_svd(D, /*full_matrices=*/false);
    at::Tensor v = Vh[0].clone();
    if (at::dot(v, r.mean_diff[layer]).item<double>() < 0) v = -v;
    r.pca[layer] = v;
    const double total = S.pow(2).sum().item<double>();
    r.pca_explained[layer] = total > 0 ? S[0].pow(2).item<double>() / total : 0.0;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace sc
