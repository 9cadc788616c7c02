// The checker's predicted error texts equal what a real LibTorch raises, for many sizes, so the
// prediction can never drift from LibTorch (1.13 on CI, 2.x on the GPU machine).
#include <gtest/gtest.h>

#include <array>
#include <torch/torch.h>

#include "checks/checker.h"
#include "models/errors.h"

using namespace sc;

static std::string thrown_view(int64_t b, int64_t s, int64_t rows, int64_t d) {
  auto x = torch::zeros({b, s, rows});
  try {
    x.view({b, s, -1, d});
  } catch (const std::exception& e) {
    return clean_exception_text(e.what());
  }
  return "";
}

TEST(ErrorText, UsersCaseEqualsLibTorch) {
  EXPECT_EQ(thrown_view(64, 103, 64, 128), view_error_text(64, 103, 128, 64 * 103 * 64));
  EXPECT_EQ(thrown_view(64, 103, 64, 128), "shape '[64, 103, -1, 128]' is invalid for input of size 421888");
}

TEST(ErrorText, ViewTextEqualsLibTorchForManySizes) {
  int checked = 0;
  for (int64_t b : {1, 2, 3, 7})
    for (int64_t s : {1, 5, 13})
      for (int64_t d : {4, 16, 32, 64, 96, 128})
        for (int64_t rows : {int64_t(0), d / 2, d / 4, d + d / 2, 3 * d - 8, int64_t(1), d * 2, d * 3}) {
          const std::string got = thrown_view(b, s, rows, d);
          if (rows % d == 0) {  // 0 rows: a view to 0 heads, no error
            EXPECT_EQ(got, "") << "view should pass: rows " << rows << " d " << d;
          } else {
            EXPECT_EQ(got, view_error_text(b, s, d, b * s * rows)) << b << "x" << s << " rows " << rows << " d " << d;
            ++checked;
          }
        }
  EXPECT_GT(checked, 300);
}

TEST(ErrorText, MatmulBroadcastEqualsLibTorch) {
  for (auto [hq, hk] : std::vector<std::pair<int64_t, int64_t>>{{8, 16}, {4, 2}, {3, 6}, {16, 8}}) {
    auto q = torch::zeros({2, hq, 5, 4});
    auto k = torch::zeros({2, hk, 4, 5});
    std::string got;
    try {
      torch::matmul(q, k);
    } catch (const std::exception& e) {
      got = clean_exception_text(e.what());
    }
    EXPECT_EQ(got, broadcast_error_text(hq, hk, 1));
  }
}

TEST(ErrorText, LinearShapeMismatchEqualsLibTorch) {
  for (auto [rows, cols, win, wout] : std::vector<std::array<int64_t, 4>>{{6, 0, 128, 64}, {12, 32, 64, 16}}) {
    auto x = torch::zeros({2, rows / 2, cols});
    auto w = torch::zeros({wout, win});
    std::string got;
    try {
      at::linear(x, w);
    } catch (const std::exception& e) {
      got = clean_exception_text(e.what());
    }
    EXPECT_EQ(got, linear_error_text(rows, cols, win, wout));
  }
}

// The whole local attention, shapes only, with real LibTorch ops in the model's order.
static std::string run_attention_shapes(const ModelConfig& c, const AttentionLayout& a, int64_t b, int64_t s) {
  const int64_t D = c.head_dim, H = c.hidden_size;
  try {
    auto x = torch::zeros({b, s, H});
    auto q = at::linear(x, torch::zeros({a.q_rows, H})).view({b, s, -1, D}).transpose(1, 2);
    auto k = at::linear(x, torch::zeros({a.kv_rows, H})).view({b, s, -1, D}).transpose(1, 2);
    auto v = at::linear(x, torch::zeros({a.kv_rows, H})).view({b, s, -1, D}).transpose(1, 2);
    auto rep = [&](const at::Tensor& t) {
      if (a.n_rep == 1) return t;
      return t.unsqueeze(2).expand({t.size(0), t.size(1), a.n_rep, t.size(2), t.size(3)})
          .reshape({t.size(0), t.size(1) * a.n_rep, t.size(2), t.size(3)});
    };
    k = rep(k);
    v = rep(v);
    auto probs = at::softmax(at::matmul(q, k.transpose(2, 3)), -1);
    auto out = at::matmul(probs, v).transpose(1, 2).contiguous().reshape({b, s, -1});
    at::linear(out, torch::zeros({H, a.q_rows}));
  } catch (const std::exception& e) {
    return clean_exception_text(e.what());
  }
  return "";
}

TEST(ErrorText, PredictAttentionMatchesLibTorchOnOddGeometries) {
  // Uneven and zero shards: every TP rank's predicted outcome equals what LibTorch does.
  int failures_seen = 0;
  for (int64_t kv : {1, 2, 3})
    for (int64_t groups : {1, 2, 3})
      for (int64_t D : {2, 4, 8})
        for (int64_t tp : {2, 3, 4, 8}) {
          ModelConfig c = configs::qwen3_30b_a3b();
          c.hidden_size = 8;
          c.num_key_value_heads = kv;
          c.num_attention_heads = kv * groups;
          c.head_dim = D;
          for (PlanStyle st : {PlanStyle::HfAuto, PlanStyle::ReplicateKv}) {
            ParallelPlan p;
            p.tp = tp;
            p.style = st;
            for (int64_t r = 0; r < tp; ++r) {
              AttentionOutcome o = predict_attention(c, p, r, 2, 3);
              std::string observed = run_attention_shapes(c, attention_layout(c, p, r), 2, 3);
              EXPECT_EQ(o.ok ? "" : o.error_text, observed)
                  << "kv " << kv << " groups " << groups << " D " << D << " tp " << tp << " rank " << r << " "
                  << plan_style_name(st);
              failures_seen += !observed.empty();
            }
          }
        }
  EXPECT_GT(failures_seen, 50);
}

TEST(ErrorText, PredictAttentionMatchesRealShapesForRealConfigs) {
  // For each real config and tp, build the local projection outputs with the planned row counts
  // and run the real views: predicted outcome == observed outcome.
  for (const ModelConfig& c : configs::all_real()) {
    for (int64_t tp : {1, 2, 3, 4, 8, 16}) {
      for (PlanStyle st : {PlanStyle::HfAuto, PlanStyle::ReplicateKv}) {
        ParallelPlan p;
        p.tp = tp;
        p.style = st;
        for (int64_t r = 0; r < tp; ++r) {
          AttentionOutcome o = predict_attention(c, p, r, 2, 3);
          AttentionLayout a = attention_layout(c, p, r);
          std::string observed;
          for (int64_t rows : {a.q_rows, a.kv_rows, a.kv_rows}) {
            observed = thrown_view(2, 3, rows, c.head_dim);
            if (!observed.empty()) break;
          }
          if (observed.empty()) {
            auto q = torch::zeros({2, a.q_rows / c.head_dim, 3, 4});
            auto k = torch::zeros({2, (a.kv_rows / c.head_dim) * a.n_rep, 4, 3});
            try {
              torch::matmul(q, k);
            } catch (const std::exception& e) {
              observed = clean_exception_text(e.what());
            }
          }
          EXPECT_EQ(o.ok ? "" : o.error_text, observed) << c.name << " tp " << tp << " rank " << r;
        }
      }
    }
  }
}
