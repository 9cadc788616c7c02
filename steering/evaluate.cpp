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

  for (size_t i = 0; i < examples.size(); ++i) {
    const EvalExample& x = examples[i];
    if (x.match < 0 || x.nonmatch < 0 || x.match >= c.vocab_size || x.nonmatch >= c.vocab_size)
      throw std::invalid_argument("steering evaluation: example " + std::to_string(i) + ": answer token ids " +
                                  std::to_string(x.match) + ", " + std::to_string(x.nonmatch) +
                                  " outside the model's vocab of " + std::to_string(c.vocab_size));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t E = int64_t(examples.size()), M = int64_t(options.multipliers.size());
  const int64_t bs = std::max<int64_t>(1, options.batch_size);
  const int64_t n_batches = (E + bs - 1) / bs;
  const int64_t total = int64_t(layers.size()) * n_batches;

  // diffs[layer index][m][example]
  std::vector<std::vector<std::vector<double>>> diffs(layers.size(),
                                                      std::vector<std::vector<double>>(size_t(M), std::vector<double>(size_t(E))));
  std::mutex mu;
  auto outcomes = run_sessions(c, p, spec, [&](RankSession& s) {
    int64_t done = 0;
    for (size_t li = 0; li < layers.size(); ++li) {
      const int64_t L = layers[li];
      const at::Tensor vec = vectors.at(L).to(at::kCPU, at::kDouble).reshape({-1});
      for (int64_t b = 0; b < n_batches; ++b) {
        const int64_t e0 = b * bs, e1 = std::min(E, (b + 1) * bs), nb = e1 - e0;
        // Rows m-major: every multiplier gets a copy of the batch.
        std::vector<std::vector<TokenId>> seqs;
        for (int64_t m = 0; m < M; ++m)
          for (int64_t e = e0; e < e1; ++e) seqs.push_back(examples[size_t(e)].prompt);
        std::vector<int64_t> pads;
        RunInputs in = padded_inputs(seqs, options.pad_id, &pads);
        const int64_t R = in.input_ids.size(0), S = in.input_ids.size(1);
        // coef[r, s] = multiplier of row r where s >= the row's padded instruction end, else 0.
        std::vector<double> coef(size_t(R * S), 0.0);
        for (int64_t r = 0; r < R; ++r) {
          const int64_t e = e0 + r % nb, m = r / nb;
          const int64_t start = pads[size_t(r)] + examples[size_t(e)].instruction_end;
          for (int64_t col = std::max<int64_t>(0, start); col < S; ++col)
            coef[size_t(r * S + col)] = options.multipliers[size_t(m)];
        }
        // Kept as [R, S, 1]; the [b, S, H] delta exists only transiently inside the hook, on the device.
        const at::Tensor coef_t = at::tensor(coef, at::TensorOptions().dtype(at::kDouble)).view({R, S, 1}).to(s.ctx.device);
        const at::Tensor vec_d = vec.to(s.ctx.device);
        RankSession::Intervention add = [&](int64_t layer, at::Tensor& hidden, int64_t off) {
          if (layer != L) return;
          // The delta is formed in fp64 and cast once to the compute dtype.
          hidden = hidden + (coef_t.slice(0, off, off + hidden.size(0)) * vec_d).to(hidden.scalar_type());
        };
        CaptureSpec cap;  // no layer captures; logits at the last column only
        cap.positions = at::full({R}, S - 1, at::TensorOptions().dtype(at::kLong));
        s.where = "evaluation layer " + std::to_string(L) + " batch " + std::to_string(b);
        RankSession::Output o = s.forward(in, cap, add);
        if (s.last_stage() && s.reports()) {
          const at::Tensor logits = o.logits.to(at::kCPU, at::kDouble).reshape({R, -1});
          auto acc = logits.accessor<double, 2>();
          std::lock_guard<std::mutex> g(mu);
          for (int64_t r = 0; r < R; ++r) {
            const int64_t e = e0 + r % nb, m = r / nb;
            const EvalExample& x = examples[size_t(e)];
            diffs[li][size_t(m)][size_t(e)] = acc[r][x.match] - acc[r][x.nonmatch];
          }
        }
        ++done;
        if (s.ctx.rank == 0 && options.progress) options.progress(done, total);
      }
    }
    s.where = "done";
  });
  if (!all_ok(outcomes)) throw std::runtime_error("steering evaluation failed: " + describe_failures(outcomes));

  EvalResult res;
  res.num_examples = E;
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
