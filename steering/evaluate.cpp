#include "steering/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/errors.h"
#include "steering/extract.h"

namespace sc {

std::vector<EvalExample> make_eval_examples(const Dataset& ds, const Tokenizer& tok,
                                            const std::function<TokenId(TokenId)>& map_id) {
  auto letter_id = [&](char letter) -> TokenId {
    auto id = tok.token_to_id(std::string(1, letter));
    if (!id) throw TokenizerError(tok.file(), "/model/vocab", std::string(1, letter), "the answer letter is not a token");
    return map_id ? map_id(*id) : *id;
  };
  std::vector<EvalExample> out;
  for (const ContrastExample& e : ds.examples) {
    if (e.eval_prompt.empty() || !e.positive_letter || !e.negative_letter)
      throw DatasetError(ds.file, "/" + std::to_string(e.index), "",
                         "evaluation needs CAA A/B items (question and answer letters); this example has none");
    EvalExample x;
    const Encoding enc = tok.encode_with_offsets(e.eval_prompt);
    x.prompt = enc.ids;
    if (map_id)
      for (TokenId& t : x.prompt) t = map_id(t);
    const size_t at = e.eval_prompt.rfind("<|im_start|>assistant");
    x.instruction_end = at == std::string::npos ? 0 : std::max<int64_t>(0, enc.token_at_byte(at));
    x.match = letter_id(e.positive_letter);
    x.nonmatch = letter_id(e.negative_letter);
    out.push_back(std::move(x));
  }
  return out;
}

double least_squares_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return 0;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
  mx /= double(n);
  my /= double(n);
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  return sxx > 0 ? sxy / sxx : 0;
}

EvalResult evaluate(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec,
                    const std::vector<EvalExample>& examples, const std::map<int64_t, at::Tensor>& vectors,
                    const EvalOptions& options) {
  if (examples.empty()) throw std::invalid_argument("steering evaluation: no examples");
  if (options.multipliers.empty()) throw std::invalid_argument("steering evaluation: no multipliers");
  std::vector<int64_t> layers = options.layers;
  if (layers.empty())
    for (const auto& [l, v] : vectors) layers.push_back(l);
  for (int64_t l : layers)
    if (!vectors.count(l)) throw std::invalid_argument("steering evaluation: no vector for layer " + std::to_string(l));
    else if (l < 0 || l >= c.num_hidden_layers)
      throw std::invalid_argument("steering evaluation: layer " + std::to_string(l) + " outside [0, " +
                                  std::to_string(c.num_hidden_layers) + ")");

  for (size_t i = 0; i < examples.size(); ++i) {
    const EvalExample& x = examples[i];
    if (x.match < 0 || x.nonmatch < 0 || x.match >= c.vocab_size || x.nonmatch >= c.vocab_size)
      throw std::invalid_argument("steering evaluation: example " + std::to_string(i) + ": answer token ids " +
                                  std::to_string(x.match) + ", " + std::to_string(x.nonmatch) +
                                  " outside the model's vocab of " + std::to_string(c.vocab_size));
  }
  // The cached sweep's passes take the layers in ascending order (indices into `layers`).
  std::vector<size_t> order(layers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return layers[a] < layers[b]; });
  for (size_t i = 1; i < order.size(); ++i)
    if (layers[order[i]] == layers[order[i - 1]])
      throw std::invalid_argument("steering evaluation: layer " + std::to_string(layers[order[i]]) + " listed twice");
  if (options.max_pass_tokens < 1) throw std::invalid_argument("steering evaluation: max_pass_tokens must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t E = int64_t(examples.size()), M = int64_t(options.multipliers.size());
  const int64_t bs = std::max<int64_t>(1, options.batch_size);
  const int64_t n_batches = (E + bs - 1) / bs;

  // diffs[layer index][m][example]
  std::vector<std::vector<std::vector<double>>> diffs(layers.size(),
                                                      std::vector<std::vector<double>>(size_t(M), std::vector<double>(size_t(E))));
  // Padded inputs of every batch (one copy of each example) and each row's first steered column.
  struct Batch {
    int64_t e0 = 0, nb = 0;
    RunInputs in;
    std::vector<int64_t> start;  // padded instruction end per row
  };
  std::vector<Batch> batches;
  int64_t token_layers = 0, naive_token_layers = 0;
  const int64_t N = c.num_hidden_layers, n_layers = int64_t(layers.size());
  for (int64_t b = 0; b < n_batches; ++b) {
    Batch bt;
    bt.e0 = b * bs;
    bt.nb = std::min(E, (b + 1) * bs) - bt.e0;
    std::vector<std::vector<TokenId>> seqs;
    for (int64_t e = bt.e0; e < bt.e0 + bt.nb; ++e) seqs.push_back(examples[size_t(e)].prompt);
    std::vector<int64_t> pads;
    bt.in = padded_inputs(seqs, options.pad_id, &pads);
    for (int64_t i = 0; i < bt.nb; ++i) bt.start.push_back(pads[size_t(i)] + examples[size_t(bt.e0 + i)].instruction_end);
    const int64_t S = bt.in.input_ids.size(1);
    naive_token_layers += n_layers * M * bt.nb * S * N;
    const int64_t split = std::clamp<int64_t>(*std::min_element(bt.start.begin(), bt.start.end()), 0, S - 1);
    token_layers += bt.nb * S * N;
    for (int64_t L : layers) token_layers += M * bt.nb * (S - split) * (N - 1 - L);
    batches.push_back(std::move(bt));
  }
  if (!options.cached) token_layers = naive_token_layers;
  const int64_t total = options.cached ? n_batches * (1 + n_layers) : n_layers * n_batches;

  // Each row's (match, nonmatch) vocab ids, rows m-major (row = m * nb + i): the logits are
  // gathered at these two columns on the device, so only [R, 2] values leave it.
  auto answer_columns = [&](const Batch& bt) {
    std::vector<int64_t> ids;
    for (int64_t r = 0; r < M * bt.nb; ++r) {
      const EvalExample& x = examples[size_t(bt.e0 + r % bt.nb)];
      ids.push_back(x.match);
      ids.push_back(x.nonmatch);
    }
    return at::tensor(ids, at::TensorOptions().dtype(at::kLong)).view({M * bt.nb, 2});
  };
  // (match, nonmatch) logits [R, 2] of rows m-major -> diffs.
  std::mutex mu;
  auto record = [&](size_t li, const Batch& bt, const at::Tensor& answer_logits) {
    const at::Tensor lg = answer_logits.to(at::kCPU, at::kDouble).reshape({M * bt.nb, 2});
    auto acc = lg.accessor<double, 2>();
    std::lock_guard<std::mutex> g(mu);
    for (int64_t r = 0; r < M * bt.nb; ++r)
      diffs[li][size_t(r / bt.nb)][size_t(bt.e0 + r % bt.nb)] = acc[r][0] - acc[r][1];
  };
  // coef[r, j] = multiplier of row r (m-major) at column first_col + j when that column is at or
  // after the row's instruction end, else 0. Kept as [R, cols, 1] fp64; the delta exists only
  // transiently, formed in fp64 and cast once to the compute dtype.
  auto coef_tensor = [&](const Batch& bt, int64_t first_col, int64_t cols, at::Device dev) {
    const int64_t R = M * bt.nb;
    std::vector<double> coef(size_t(R * cols), 0.0);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = std::max<int64_t>(0, bt.start[size_t(r % bt.nb)] - first_col); j < cols; ++j)
        coef[size_t(r * cols + j)] = options.multipliers[size_t(r / bt.nb)];
    return at::tensor(coef, at::TensorOptions().dtype(at::kDouble)).view({R, cols, 1}).to(dev);
  };

  auto naive = [&](RankSession& s) {
    int64_t done = 0;
    for (size_t li = 0; li < layers.size(); ++li) {
      const int64_t L = layers[li];
      const at::Tensor vec_d = vectors.at(L).to(at::kCPU, at::kDouble).reshape({-1}).to(s.ctx.device);
      for (int64_t b = 0; b < n_batches; ++b) {
        const Batch& bt = batches[size_t(b)];
        // Rows m-major: every multiplier gets a copy of the batch.
        RunInputs in = bt.in;
        in.input_ids = bt.in.input_ids.repeat({M, 1});
        in.attention_mask = bt.in.attention_mask.repeat({M, 1});
        const int64_t R = in.input_ids.size(0), S = in.input_ids.size(1);
        const at::Tensor coef_t = coef_tensor(bt, 0, S, s.ctx.device);
        RankSession::Intervention add = [&](int64_t layer, at::Tensor& hidden, int64_t off) {
          if (layer != L) return;
          hidden = hidden + (coef_t.slice(0, off, off + hidden.size(0)) * vec_d).to(hidden.scalar_type());
        };
        CaptureSpec cap;  // no layer captures; logits at the last column only
        cap.positions = at::full({R}, S - 1, at::TensorOptions().dtype(at::kLong));
        s.where = "evaluation layer " + std::to_string(L) + " batch " + std::to_string(b);
        RankSession::Output o = s.forward(in, cap, add);
        if (s.last_stage() && s.reports())
          record(li, bt, o.logits.reshape({R, -1}).gather(1, answer_columns(bt).to(o.logits.device())));
        ++done;
        if (s.ctx.rank == 0 && options.progress) options.progress(done, total);
      }
    }
    s.where = "done";
  };

  // Layers per resume pass: as many as keep a pass within max_pass_tokens suffix tokens.
  auto cached = [&](RankSession& s) {
    int64_t done = 0;
    for (int64_t b = 0; b < n_batches; ++b) {
      const Batch& bt = batches[size_t(b)];
      const int64_t S = bt.in.input_ids.size(1);
      const int64_t split = std::clamp<int64_t>(*std::min_element(bt.start.begin(), bt.start.end()), 0, S - 1);
      s.where = "evaluation batch " + std::to_string(b) + " prefill";
      const RankSession::PrefixCache cache = s.prefill(bt.in, split);
      if (s.ctx.rank == 0 && options.progress) options.progress(++done, total);
      const at::Tensor coef_t = coef_tensor(bt, split, S - split, s.ctx.device);
      const at::Tensor cols = answer_columns(bt).to(s.ctx.device);
      const int64_t group_tokens = M * bt.nb * (S - split);
      const size_t per_pass = size_t(std::max<int64_t>(1, options.max_pass_tokens / std::max<int64_t>(1, group_tokens)));
      for (size_t l0 = 0; l0 < order.size(); l0 += per_pass) {
        const size_t l1 = std::min(order.size(), l0 + per_pass);
        std::vector<int64_t> pass_layers;
        std::vector<at::Tensor> vecs;  // fp64 on the device, per group
        for (size_t g = l0; g < l1; ++g) {
          pass_layers.push_back(layers[order[g]]);
          vecs.push_back(vectors.at(layers[order[g]]).to(at::kCPU, at::kDouble).reshape({-1}).to(s.ctx.device));
        }
        // Layer L's cached suffix output, one copy per multiplier, plus the steering delta: the
        // same values the naive sweep's hook produces at these columns.
        auto edit = [&](size_t g, const at::Tensor& h) {
          return h.repeat({M, 1, 1}) + (coef_t * vecs[g]).to(h.scalar_type());
        };
        s.where = "evaluation layers " + std::to_string(pass_layers.front()) + ".." +
                  std::to_string(pass_layers.back()) + " batch " + std::to_string(b);
        const at::Tensor got = s.resume(cache, pass_layers, M, edit, cols.repeat({int64_t(l1 - l0), 1}));
        if (s.last_stage() && s.reports())
          for (size_t g = l0; g < l1; ++g)
            record(order[g], bt, got.narrow(0, int64_t(g - l0) * M * bt.nb, M * bt.nb));
        done += int64_t(l1 - l0);
        if (s.ctx.rank == 0 && options.progress) options.progress(done, total);
      }
    }
    s.where = "done";
  };
  // torchrun (one rank per process): the rank that records the logits (last stage) sends the
  // logit differences to rank 0, which reports.
  const int64_t recorder = (p.pp - 1) * p.stage_size();
  const bool torchrun = torchrun_job() && p.world_size() > 1 && recorder != 0;
  auto outcomes = run_sessions(c, p, spec, [&](RankSession& s) {
    options.cached ? cached(s) : naive(s);
    if (!torchrun || (s.ctx.rank != recorder && s.ctx.rank != 0)) return;
    const int64_t nl = int64_t(layers.size());
    if (s.ctx.rank == recorder) {
      at::Tensor t = at::zeros({nl, M, E}, at::TensorOptions().dtype(at::kDouble));
      auto acc = t.accessor<double, 3>();
      for (int64_t li = 0; li < nl; ++li)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t e = 0; e < E; ++e) acc[li][m][e] = diffs[size_t(li)][size_t(m)][size_t(e)];
      store_set(s.ctx, "sc/steer/diffs", pack_tensors({{"diffs", t}}));
    } else {
      const at::Tensor t = unpack_tensors(wait_and_get(s.ctx, "sc/steer/diffs", spec.launch.timeout)).at(0).second;
      auto acc = t.accessor<double, 3>();
      for (int64_t li = 0; li < nl; ++li)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t e = 0; e < E; ++e) diffs[size_t(li)][size_t(m)][size_t(e)] = acc[li][m][e];
    }
  });
  if (!all_ok(outcomes)) throw std::runtime_error("steering evaluation failed: " + describe_failures(outcomes));

  EvalResult res;
  res.num_examples = E;
  res.cached = options.cached;
  res.token_layers = token_layers;
  res.naive_token_layers = naive_token_layers;
  double best = -INFINITY;
  for (size_t li = 0; li < layers.size(); ++li) {
    LayerEval le;
    le.layer = layers[li];
    le.multipliers = options.multipliers;
    le.example_logit_diff = diffs[li];
    for (int64_t m = 0; m < M; ++m) {
      double sd = 0, sp = 0;
      for (double d : diffs[li][size_t(m)]) sd += d, sp += 1.0 / (1.0 + std::exp(-d));
      le.logit_diff.push_back(sd / double(E));
      le.p_match.push_back(sp / double(E));
    }
    le.slope = least_squares_slope(le.multipliers, le.logit_diff);
    if (le.slope > best) best = le.slope, res.best_layer = le.layer;
    res.layers.push_back(std::move(le));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

void to_json(nlohmann::json& j, const LayerEval& e) {
  j = nlohmann::json{{"layer", e.layer},       {"multipliers", e.multipliers}, {"logit_diff", e.logit_diff},
                     {"p_match", e.p_match},   {"slope", e.slope},             {"example_logit_diff", e.example_logit_diff}};
}

void to_json(nlohmann::json& j, const EvalResult& r) {
  j = nlohmann::json{{"num_examples", r.num_examples},
                     {"best_layer", r.best_layer},
                     {"seconds", r.seconds},
                     {"sweep", r.cached ? "cached" : "naive"},
                     {"token_layers", r.token_layers},
                     {"naive_token_layers", r.naive_token_layers},
                     {"work_ratio", r.work_ratio()},
                     {"layer_indexing", "HF decoder layer output, 0-based"},
                     {"layers", r.layers}};
}

std::string eval_csv(const EvalResult& r) {
  std::ostringstream os;
  os.precision(17);
  os << "layer,multiplier,logit_diff,p_match,slope\n";
  for (const LayerEval& e : r.layers)
    for (size_t m = 0; m < e.multipliers.size(); ++m)
      os << e.layer << ',' << e.multipliers[m] << ',' << e.logit_diff[m] << ',' << e.p_match[m] << ',' << e.slope << '\n';
  return os.str();
}

}  // namespace sc
