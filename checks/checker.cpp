#include "checks/checker.h"

#include "families/family.h"

#include <algorithm>
#include <numeric>
#include <sstream>

namespace sc {

namespace {
std::string s(int64_t v) { return std::to_string(v); }

std::string ranks_text(const std::vector<int64_t>& r) {
  if (r.empty()) return "all ranks";
  std::string out = r.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < r.size();) {  // compress runs: 0,1,2,3,5 -> 0-3,5
    size_t j = i;
    while (j + 1 < r.size() && r[j + 1] == r[j] + 1) ++j;
    out += (i ? "," : "") + s(r[i]) + (j > i ? "-" + s(r[j]) : "");
    i = j + 1;
  }
  return out;
}
}  // namespace

std::string view_error_text(int64_t b, int64_t sq, int64_t d, int64_t numel) {
  const std::string shape = "[" + s(b) + ", " + s(sq) + ", -1, " + s(d) + "]";
  if (numel == 0)
    return "cannot reshape tensor of 0 elements into shape " + shape +
           " because the unspecified dimension size -1 can be any value and is ambiguous";
  return "shape '" + shape + "' is invalid for input of size " + s(numel);
}

std::string linear_error_text(int64_t rows, int64_t cols, int64_t w_in, int64_t w_out) {
  return "mat1 and mat2 shapes cannot be multiplied (" + s(rows) + "x" + s(cols) + " and " + s(w_in) + "x" + s(w_out) + ")";
}

std::string broadcast_error_text(int64_t a, int64_t b, int64_t dim) {
  return "The size of tensor a (" + s(a) + ") must match the size of tensor b (" + s(b) +
         ") at non-singleton dimension " + s(dim);
}

std::string gather_output_error_text(const std::string& module, int64_t size, int64_t tp) {
  return "The output size of `" + module + "` (" + s(size) + ") must be divisible by the tensor parallel size (" + s(tp) +
         ") when gathering a colwise output.";
}

std::string mixed_dtensor_error_text(const std::string& op) {
  return op + " got mixed torch.Tensor and DTensor, need to convert all torch.Tensor to DTensor before calling "
              "distributed operators!";
}

LoadOutcome predict_hf_load(const ModelConfig& c, const ParallelPlan& p) {
  LoadOutcome o;
  if (p.tp <= 1) return o;
  // Modules HF gathers, checked per layer in registration order (one layer of each kind lists
  // them; the first failing layer is the first of its kind).
  const LayerKindIndex kinds = layer_kind_index(c);
  std::vector<std::vector<TensorSpec>> lists;
  for (int64_t first : kinds.first) {
    std::vector<TensorSpec> gathered;
    for (const TensorSpec& t : representative_layer_tensors(c, first))
      if (!t.bias && hf_style_of(c, t.role) == "colwise_gather_output") gathered.push_back(t);
    lists.push_back(std::move(gathered));
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    for (const TensorSpec& t : lists[kinds.of_layer[size_t(l)]]) {
      if (t.shape[0] % p.tp == 0) continue;
      o.ok = false;
      o.module = c.module_prefix + ".layers." + s(l) + "." + role_module(c, t.role);
      o.size = t.shape[0];
      o.error_text = gather_output_error_text(o.module, o.size, p.tp);
      return o;
    }
  }
  if (hf_style_of(c, Role::LmHead) == "colwise_gather_output" && c.vocab_size % p.tp != 0) {
    o.ok = false;
    o.module = "lm_head";
    o.size = c.vocab_size;
    o.error_text = gather_output_error_text("lm_head", c.vocab_size, p.tp);
  }
  return o;
}

AttentionOutcome predict_attention(const ModelConfig& c, const ParallelPlan& p, int64_t tp_rank, int64_t batch,
                                   int64_t seq) {
  AttentionOutcome o;
  const AttentionLayout a = attention_layout(c, p, tp_rank);
  if (!a.sharded) return o;  // whole heads on every rank: nothing to fail
  const int64_t D = c.head_dim, T = batch * seq;
  const int64_t gate = c.attention_output_gate ? 2 : 1;
  o.n_rep = a.n_rep;
  auto view_w = [&](int64_t rows, const char* op, const char* module, int64_t width) {
    // view({B, S, -1, width}) on a [B, S, rows] tensor succeeds iff rows is a multiple of width
    // (0 rows give 0 heads: no error here, the shapes fail later).
    if (rows % width == 0) return true;
    o.ok = false;
    o.op = op;
    o.module = module;
    o.error_text = view_error_text(batch, seq, width, T * rows);
    return false;
  };
  // With an output gate (Qwen3-Next, Qwen3.5) q_proj's output is first viewed in 2 x head_dim.
  if (!view_w(a.q_proj_rows, "q view", "self_attn.q_proj", gate * D)) return o;
  auto view = [&](int64_t rows, const char* op, const char* module) { return view_w(rows, op, module, D); };
  if (!view(a.kv_rows, "k view", "self_attn.k_proj")) return o;
  if (!view(a.kv_rows, "v view", "self_attn.v_proj")) return o;
  o.local_q_heads = a.q_rows / D;
  o.local_kv_heads = a.kv_rows / D;
  const int64_t kv_rep = o.local_kv_heads * a.n_rep;
  // Broadcasting of the head dim in matmul: sizes must match or one must be 1.
  auto broadcast = [&](int64_t x, int64_t y, const char* op, int64_t* result) {
    if (x == y || x == 1 || y == 1) {
      *result = x == 1 ? y : x;
      return true;
    }
    o.ok = false;
    o.op = op;
    o.module = "self_attn";
    o.error_text = broadcast_error_text(x, y, 1);
    return false;
  };
  int64_t score_heads = 0, out_heads = 0;
  if (!broadcast(o.local_q_heads, kv_rep, "q @ k^T", &score_heads)) return o;
  if (!broadcast(score_heads, kv_rep, "probs @ v", &out_heads)) return o;
  // o_proj: [B*S, out_heads*D] x [q_rows, H]^T.
  if (out_heads * D != a.q_rows) {
    o.ok = false;
    o.op = "o_proj";
    o.module = "self_attn.o_proj";
    o.error_text = linear_error_text(T, out_heads * D, a.q_rows, c.hidden_size);
    return o;
  }
  // Alignment: local query head i uses repeated KV head (i mod kv_rep) / n_rep; globally it must
  // use KV head (global q head) / groups.
  const int64_t groups = c.kv_groups();
  const int64_t q0 = a.q_row_begin / D, k0 = a.kv_row_begin / D;
  for (int64_t i = 0; i < o.local_q_heads; ++i) {
    const int64_t used = k0 + (kv_rep == 1 ? 0 : i / std::max<int64_t>(a.n_rep, 1));
    const int64_t wanted = (q0 + i) / groups;
    if (used != wanted) {
      o.gqa_aligned = false;
      o.misalignment = "query head " + s(q0 + i) + " attends KV head " + s(used) + " instead of " + s(wanted);
      break;
    }
  }
  return o;
}

namespace {

struct Ctx {
  const ModelConfig& c;
  const ParallelPlan& p;
  CheckResult& r;
  void add(Finding f) { r.findings.push_back(std::move(f)); }
};

void check_attention(Ctx& x) {
  const ModelConfig& c = x.c;
  const ParallelPlan& p = x.p;
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim, tp = p.tp;
  const bool rkv = p.style == PlanStyle::ReplicateKv;

  if (H * D != c.hidden_size && c.attention_kind != AttentionKind::Mla) {
    Finding f{"head-geometry", Severity::Info, "num_attention_heads x head_dim vs hidden_size",
              c.module_prefix + ".layers.*.self_attn", {},
              "attention width " + s(H) + " x " + s(D) + " = " + s(H * D) + " differs from hidden_size " +
                  s(c.hidden_size) + " (legal: q_proj maps " + s(c.hidden_size) + " -> " + s(H * D) +
                  ", o_proj back); shards are counted in head_dim units, not hidden/heads",
              "", "", {{"heads", H}, {"head_dim", D}, {"hidden", c.hidden_size}}};
    x.add(std::move(f));
  }
  if (tp == 1) return;
  const std::string layers = c.module_prefix + ".layers.*.";
  // vLLM refuses such a tp for every model before loading (ModelConfig.verify_with_parallel_config).
  if (H % tp != 0)
    x.add(Finding{"vllm-refuses-tp", Severity::Info, "num_attention_heads / tp (vLLM)", layers + "self_attn", {},
                  "vLLM refuses tp=" + s(tp) + " for this model before loading: its " + s(H) +
                      " attention heads do not split evenly (vLLM requires num_attention_heads % tp == 0 and "
                      "replicates KV heads only when tp > num_key_value_heads)",
                  "ValueError: Total number of attention heads (" + s(H) + ") must be divisible by tensor parallel size (" +
                      s(tp) + ").",
                  "use a tp that divides " + s(H) + " with vLLM", {{"heads", H}, {"tp", tp}}});
  const int64_t first = c.first_attention_layer();
  if (!attention_is_sharded(c, p)) {
    const FamilySpec& fam = family_of(c);
    std::string how = c.attention_kind == AttentionKind::Mla
                          ? "multi-head latent attention, which HF's plan for " + fam.name + " leaves unsharded"
                      : c.attention_kind == AttentionKind::FusedQkv
                          ? "qkv_proj is split colwise and its output gathered (colwise_gather_output), so every rank "
                            "views all heads"
                          : "HF's plan for " + fam.name + " names no attention module";
    if (first >= 0)
      x.add(Finding{"attention-replicated", Severity::Info, "attention heads per rank", layers + "self_attn", {},
                    "tp=" + s(tp) + " does not split the attention heads: " + how +
                        "; every rank computes all " + s(H) + " heads (no head-count constraint, no saving in "
                        "attention memory or compute)",
                    "", "", {{"heads", H}, {"kv_heads", KV}, {"tp", tp}, {"attention", attention_kind_name(c.attention_kind)}}});
    return;
  }

  // Per TP rank: simulate the attention's shapes and record failures by (op, text).
  struct Group { AttentionOutcome o; std::vector<int64_t> ranks; };
  std::vector<Group> fails, misaligned;
  for (int64_t t = 0; t < tp; ++t) {
    AttentionOutcome o = predict_attention(c, p, t, p.micro_batch_rows(), p.seq);
    // Global ranks holding this tp_rank in stage 0, dp 0 (the pattern repeats in every stage).
    std::vector<int64_t> ranks;
    for (int64_t rep = 0; rep < p.tp_replicas(); ++rep) ranks.push_back(rep * tp + t);
    auto& bucket = !o.ok ? fails : misaligned;
    if (o.ok && o.gqa_aligned) continue;
    auto it = std::find_if(bucket.begin(), bucket.end(), [&](const Group& g) {
      return g.o.error_text == o.error_text && g.o.op == o.op && g.o.misalignment.empty() == o.misalignment.empty();
    });
    if (it == bucket.end()) bucket.push_back(Group{o, ranks});
    else it->ranks.insert(it->ranks.end(), ranks.begin(), ranks.end());
  }

  const int64_t kv_cols = KV * D;
  std::string fix_kv = "use a tp that divides the " + s(KV) + " KV heads (tp <= " + s(KV) +
                       ") with hf-auto, or --plan replicate-kv (each KV head replicated on tp / kv ranks, as vLLM does)";
  for (auto& g : fails) {
    const AttentionLayout a = attention_layout(c, p, g.ranks.front() % tp);
    Finding f;
    f.severity = Severity::Error;
    f.ranks = g.ranks;
    f.error_text = g.o.error_text;
    f.module = layers + g.o.module;
    if (g.o.op == "q view") {
      f.id = "q-heads-split";
      f.parameter = "num_attention_heads x head_dim / tp";
      f.message = "q_proj has " + s(H) + " heads x " + s(D) + " = " + s(H * D) + " output features; split over tp=" +
                  s(tp) + " gives " + s(a.q_rows) + " per rank on " + ranks_text(g.ranks) + ", " +
                  (a.q_rows == 0 ? "none at all" : "not a multiple of head_dim " + s(D)) + ", so view(" + s(p.batch) +
                  ", " + s(p.seq) + ", -1, " + s(c.attention_output_gate ? 2 * D : D) + ") fails in every " +
                  (c.layer_kinds.empty() ? std::string("layer's attention") : std::string("softmax-attention layer")) +
                  " (layer " + s(first) + " first)";
      f.fix = "use a tp that divides num_attention_heads = " + s(H);
    } else if (g.o.op == "q @ k^T" || g.o.op == "probs @ v" || g.o.op == "o_proj") {
      f.id = "gqa-head-mismatch";
      f.parameter = "local query heads vs local KV heads x n_rep";
      f.message = "rank holds " + s(g.o.local_q_heads) + " query heads but " + s(g.o.local_kv_heads) +
                  " KV heads repeated " + s(g.o.n_rep) + " times (" + std::string(rkv ? "local" : "global") +
                  " ratio), so the attention matmul cannot broadcast";
      f.fix = rkv ? "use a tp that divides num_attention_heads and is a multiple or divisor of num_key_value_heads"
                  : fix_kv;
    } else {
      f.id = "kv-heads-split";
      f.parameter = "num_key_value_heads x head_dim / tp";
      const std::string proj = g.o.op == "k view" ? "k_proj" : "v_proj";
      f.message = proj + " has " + s(KV) + " KV heads x " + s(D) + " = " + s(kv_cols) +
                  " output features; colwise over tp=" + s(tp) + " gives " + s(a.kv_rows) + " columns per rank on " +
                  ranks_text(g.ranks) + " = " +
                  (a.kv_rows == 0 ? std::string("no KV head at all")
                                  : (a.kv_rows % D == 0 ? s(a.kv_rows / D) + " heads"
                                                        : s(a.kv_rows) + "/" + s(D) + " of a head")) +
                  "; view(" + s(p.batch) + ", " + s(p.seq) + ", -1, " + s(D) + ") needs whole " + s(D) +
                  "-wide heads: " + s(p.batch) + " x " + s(p.seq) + " x " + s(a.kv_rows) + " = " +
                  s(p.batch * p.seq * a.kv_rows) + " elements";
      f.fix = fix_kv;
    }
    f.values = {{"heads", H}, {"kv_heads", KV}, {"head_dim", D}, {"tp", tp}, {"q_rows_per_rank", a.q_rows},
                {"kv_rows_per_rank", a.kv_rows}, {"batch", p.batch}, {"seq", p.seq}, {"op", g.o.op},
                {"first_layer", first}};
    f.phase = "forward";
    if (first > 0)
      f.message += " (layers before " + s(first) + " are linear attention, which HF gathers whole)";
    x.add(std::move(f));
  }
  for (auto& g : misaligned) {
    Finding f{"gqa-misaligned", Severity::Error, "query heads per rank vs KV head groups",
              layers + "self_attn", g.ranks,
              "the attention runs without an error but computes the wrong thing on " + ranks_text(g.ranks) + ": " +
                  g.o.misalignment + " (" + s(H) + " query heads in groups of " + s(c.kv_groups()) + ", tp=" + s(tp) +
                  ")",
              "", rkv ? "use a tp that is a multiple or a divisor of num_key_value_heads = " + s(KV) : fix_kv,
              {{"heads", H}, {"kv_heads", KV}, {"tp", tp}}};
    x.add(std::move(f));
  }
  if (rkv && fails.empty() && misaligned.empty() && tp > KV) {
    x.add(Finding{"kv-replicated", Severity::Info, "num_key_value_heads vs tp", layers + "self_attn.{k,v}_proj",
                  {},
                  "each of the " + s(KV) + " KV heads is replicated on " + s(tp / KV) + " ranks (k_proj/v_proj: " +
                      s(D) + " rows per rank instead of " + s(kv_cols) + "/" + s(tp) + ")",
                  "", "", {{"kv_heads", KV}, {"tp", tp}, {"replicas", tp / KV}}});
  }
}

void check_mlp(Ctx& x) {
  const ModelConfig& c = x.c;
  const ParallelPlan& p = x.p;
  const bool has_dense = c.num_sparse_layers() < c.num_hidden_layers;
  const std::string layers = c.module_prefix + ".layers.*.";
  if (has_dense && p.tp > 1 && hf_style_of(c, Role::DenseGate) == "colwise" && c.intermediate_size % p.tp != 0) {
    x.add(Finding{"intermediate-split", Severity::Warning, "intermediate_size / tp", layers + "mlp.{gate,up,down}_proj",
                  {},
                  "intermediate_size " + s(c.intermediate_size) + " is not a multiple of tp=" + s(p.tp) +
                      ": shards of " + s(chunk_range(c.intermediate_size, p.tp, 0).second) +
                      " and fewer; results stay correct (gate/up colwise and down rowwise use the same split) but "
                      "the ranks are unbalanced",
                  "", "use a tp that divides " + s(c.intermediate_size), {{"intermediate_size", c.intermediate_size}, {"tp", p.tp}}});
  }
  if (!c.is_moe()) return;
  const int64_t E = c.num_experts, K = c.num_experts_per_tok, I = c.moe_intermediate_size;
  // Experts split by TP only where HF's plan shards them (qwen3_vl_moe's does not: whole experts per rank).
  const bool experts_tp = p.ep > 1 || !hf_style_of(c, Role::ExpertGate).empty();
  const int64_t etp = experts_tp ? p.etp() : 1;
  if (p.tp > 1 && p.ep == 1 && !experts_tp && hf_plan_shards_layers(c))
    x.add(Finding{"experts-replicated", Severity::Info, "routed experts per rank", layers + "mlp.experts", {},
                  "HF's plan for " + family_of(c).name + " does not shard the routed experts: each of the " + s(p.tp) +
                      " ranks holds all " + s(E) + " experts of every sparse layer",
                  "", "use expert parallelism (--ep) to split them", {{"num_experts", E}, {"tp", p.tp}}});
  if (etp > 1 && I % etp != 0) {
    x.add(Finding{"moe-intermediate-split", Severity::Warning,
                  "moe_intermediate_size / expert-tp (gate_up_proj packs 2 x " + s(I) + ")",
                  layers + "mlp.experts.*", {},
                  "moe_intermediate_size " + s(I) + " is not a multiple of the expert tensor-parallel size " + s(etp) +
                      " (packed gate_up_proj has 2 x " + s(I) + " = " + s(2 * I) +
                      " rows, split per half): uneven expert shards",
                  "", "use tp/ep so that " + s(I) + " % (stage ranks / ep) == 0, or expert parallelism",
                  {{"moe_intermediate_size", I}, {"etp", etp}}});
  }
  if (etp > I) {
    x.add(Finding{"moe-intermediate-empty", Severity::Warning, "moe_intermediate_size vs expert-tp", "model.layers.*.mlp.experts.*",
                  {}, "expert-tp " + s(etp) + " exceeds moe_intermediate_size " + s(I) + ": some ranks hold empty expert shards",
                  "", "use expert parallelism (--ep) instead of tensor-parallel experts", {{"moe_intermediate_size", I}, {"etp", etp}}});
  }
  if (p.ep > 1) {
    if (p.ep > E) {
      x.add(Finding{"experts-ep", Severity::Error, "num_experts / ep", layers + "mlp.experts", {},
                    "ep=" + s(p.ep) + " exceeds num_experts=" + s(E) + ": some expert-parallel ranks own no expert", "",
                    "use ep <= " + s(E), {{"num_experts", E}, {"ep", p.ep}}});
    } else if (E % p.ep != 0) {
      x.add(Finding{"experts-ep", Severity::Error, "num_experts / ep", layers + "mlp.experts", {},
                    "num_experts=" + s(E) + " is not a multiple of ep=" + s(p.ep) +
                        ": expert-parallel groups would own unequal expert counts (" +
                        s(chunk_range(E, p.ep, 0).second) + " and fewer); HF's ep_router requires an even split",
                    "", "use an ep that divides " + s(E), {{"num_experts", E}, {"ep", p.ep}}});
    }
    const int64_t per = (E + p.ep - 1) / p.ep;
    if (per < K) {
      x.add(Finding{"experts-per-rank", Severity::Info, "experts per EP rank vs top-k", layers + "mlp.experts", {},
                    s(per) + " experts per EP rank < top-k " + s(K) + ": every token is dispatched to at least " +
                        s((K + per - 1) / per) + " ranks",
                    "", "", {{"experts_per_rank", per}, {"top_k", K}}});
    }
  }
}

// HF's load-time validation (before any forward): predict_hf_load.
void check_load(Ctx& x) {
  const ModelConfig& c = x.c;
  const ParallelPlan& p = x.p;
  const LoadOutcome o = predict_hf_load(c, p);
  if (o.ok) return;
  Finding f;
  f.severity = Severity::Error;
  f.phase = "load";
  f.module = o.module;
  f.error_text = o.error_text;
  f.values = {{"module", o.module}, {"output_size", o.size}, {"tp", p.tp}};
  const int64_t up = (o.size + p.tp - 1) / p.tp * p.tp;
  if (o.module == "lm_head") {
    auto [b0, e0] = chunk_range(c.vocab_size, p.tp, 0);
    auto [bl, el] = chunk_range(c.vocab_size, p.tp, p.tp - 1);
    f.id = "vocab-split";
    f.parameter = "vocab_size / tp";
    f.message = "lm_head is vocab-parallel (colwise_gather_output): " + s(c.vocab_size) + " rows over tp=" + s(p.tp) +
                " would give shards of " + s(e0 - b0) + " and " + s(el - bl) +
                " rows, and the all-gather of the logits needs equal shards: HF refuses the plan while loading, "
                "before any forward";
    f.fix = "use a tp that divides " + s(c.vocab_size) + ", pad vocab_size to a multiple of tp (" + s(up) +
            ") or keep lm_head replicated";
  } else {
    f.id = "gather-output-split";
    f.parameter = "output features / tp (colwise_gather_output)";
    f.message = o.module + " is split colwise and its output gathered (HF style colwise_gather_output): its " +
                s(o.size) + " output features are not a multiple of tp=" + s(p.tp) +
                ", so HF refuses the plan while loading, before any forward";
    f.fix = "use a tp that divides " + s(o.size);
  }
  x.add(std::move(f));
}

// After the decoder stack: lm_head of wrappers whose class has no plan for it but ties it to an
// embedding the plan shards (gemma3's Gemma3ForConditionalGeneration).
void check_lm_head(Ctx& x) {
  const ModelConfig& c = x.c;
  if (x.p.tp <= 1 || !c.tie_word_embeddings) return;
  if (hf_style_of(c, Role::Embed).empty() || !hf_style_of(c, Role::LmHead).empty()) return;
  x.add(Finding{"tied-lm-head-unsharded", Severity::Error, "tied lm_head vs sharded embed_tokens", "lm_head", {},
                "embed_tokens is sharded (" + hf_style_of(c, Role::Embed) + ", a DTensor) and lm_head shares its "
                "weight, but " + (c.wrapper_model_type.empty() ? c.model_type : c.wrapper_model_type) +
                "'s model class has no tensor-parallel plan for lm_head: after the last layer, lm_head multiplies "
                "the plain hidden states by the DTensor weight and every rank raises",
                mixed_dtensor_error_text("aten.mm.default"),
                "load the text model alone (its *ForCausalLM class plans lm_head as colwise_gather_output), or untie "
                "lm_head",
                {{"tie_word_embeddings", true}, {"embed_style", hf_style_of(c, Role::Embed)}, {"tp", x.p.tp}},
                "forward"});
}

// Families for which HF has no plan for the decoder layers: tp_plan="auto" shards next to nothing.
void check_hf_plan(Ctx& x) {
  const ModelConfig& c = x.c;
  if (x.p.tp <= 1 || hf_plan_shards_layers(c)) return;
  const FamilySpec& fam = family_of(c);
  x.add(Finding{"no-hf-tp-plan", Severity::Warning, "HF base_model_tp_plan", c.module_prefix + ".layers", {},
                "HF transformers 5.17 has no base_model_tp_plan for " + fam.name +
                    ": tp_plan=\"auto\" shards " +
                    (hf_style_of(c, Role::LmHead).empty() ? std::string("nothing") : std::string("only lm_head")) +
                    " and every rank holds and computes every layer whole (attention, experts): tp=" + s(x.p.tp) +
                    " gives no memory saving there",
                "", "use expert parallelism or pipeline placement, or an engine with a plan for " + fam.name,
                {{"family", fam.name}, {"tp", x.p.tp}}});
}

void check_pipeline(Ctx& x) {
  const ModelConfig& c = x.c;
  const ParallelPlan& p = x.p;
  if (p.pp == 1) return;
  const int64_t L = c.num_hidden_layers;
  if (p.pp > L) {
    x.add(Finding{"pp-layers", Severity::Error, "num_hidden_layers / pp", "model.layers", {},
                  "pp=" + s(p.pp) + " stages for " + s(L) + " layers: " + s(p.pp - L) + " stages would hold no layer", "",
                  "use pp <= " + s(L), {{"layers", L}, {"pp", p.pp}}});
    return;
  }
  std::vector<int64_t> sizes, params;
  for (int64_t st = 0; st < p.pp; ++st) {
    auto [b, e] = stage_layers(L, p.pp, st);
    sizes.push_back(e - b);
    int64_t n = 0;
    for (int64_t l = b; l < e; ++l) n += c.layer_params(l);
    if (st == 0) n += c.embedding_params();
    if (st == p.pp - 1) n += c.lm_head_params() + (c.tie_word_embeddings ? c.embedding_params() : 0);
    params.push_back(n);
  }
  const int64_t mx = *std::max_element(params.begin(), params.end());
  const int64_t mn = *std::min_element(params.begin(), params.end());
  std::string stages;
  for (size_t i = 0; i < sizes.size(); ++i) stages += (i ? ", " : "") + s(sizes[i]);
  const double imbalance = mn > 0 ? double(mx) / double(mn) : 0;
  x.add(Finding{"pp-balance", L % p.pp == 0 && imbalance < 1.1 ? Severity::Info : Severity::Warning,
                "num_hidden_layers / pp", "model.layers", {},
                s(L) + " layers over pp=" + s(p.pp) + " stages: " + stages + " layers; largest/smallest stage parameters " +
                    std::to_string(imbalance).substr(0, 4) + "x (embedding on stage 0, lm_head on the last); each token "
                    "passes the stages one after another, so without micro-batches only one stage works at a time",
                "", L % p.pp == 0 ? "" : "use a pp that divides " + s(L) + " for equal stages",
                {{"layers", L}, {"pp", p.pp}, {"stage_layers", sizes}, {"stage_params", params}}});
  if (c.tie_word_embeddings) {
    x.add(Finding{"pp-tied-embeddings", Severity::Warning, "tie_word_embeddings with pp > 1", "model.embed_tokens / lm_head", {},
                  "embed_tokens (stage 0) and lm_head (stage " + s(p.pp - 1) +
                      ") share one weight; across stages the last stage needs its own copy (counted in memory)",
                  "", "load embed_tokens.weight on both the first and the last stage", {{"pp", p.pp}}});
  }
  const int64_t mb = p.micro_batches;
  const double bubble = double(p.pp - 1) / double(mb + p.pp - 1);
  x.add(Finding{"pp-bubble", Severity::Info, "pipeline bubble", "model.layers", {},
                "with " + s(mb) + " micro-batch(es) over " + s(p.pp) + " stages the bubble is (pp-1)/(m+pp-1) = " +
                    std::to_string(bubble).substr(0, 5) + " of the time",
                "", mb < 4 * p.pp ? "use >= " + s(4 * p.pp) + " micro-batches (--micro-batches)" : "",
                {{"micro_batches", mb}, {"pp", p.pp}, {"bubble_fraction", bubble}}});
}

void check_memory(Ctx& x, const CheckOptions& o) {
  x.r.memory = estimate_memory(x.c, x.p);
  x.r.memory_limit_gib = o.memory_limit_gib;
  if (o.memory_limit_gib <= 0) return;
  const double limit = o.memory_limit_gib;
  std::vector<int64_t> over_run, over_load;
  int64_t worst_run = 0, worst_load = 0;
  for (const auto& m : x.r.memory) {
    const int64_t run = m.weight_bytes + m.activation_bytes;
    const int64_t load = x.p.shard_only_loading ? m.load_peak_shard_bytes : m.load_peak_full_bytes;
    if (to_gib(run) > limit) over_run.push_back(m.rank);
    if (to_gib(load) > limit) over_load.push_back(m.rank);
    worst_run = std::max(worst_run, run);
    worst_load = std::max(worst_load, load);
  }
  auto gib = [](int64_t b) {
    std::ostringstream os;
    os.precision(1);
    os << std::fixed << to_gib(b) << " GiB";
    return os.str();
  };
  std::ostringstream lim;
  lim.precision(0);
  lim << std::fixed << limit << " GiB";
  // The larger need first: it is the first failing invariant reported by matrix and report.
  auto add_run = [&]() {
    if (!over_run.empty())
      x.add(Finding{"memory", Severity::Error, "weights + activations per rank", "model", over_run,
                    "needs up to " + gib(worst_run) + " per rank (weights + activations for batch " + s(x.p.batch) + " x seq " +
                        s(x.p.seq) + "), more than the " + lim.str() + " available",
                    "", "add ranks (tp, ep or pp) or lower batch x seq",
                    {{"bytes", worst_run}, {"limit_gib", limit}}});
  };
  auto add_load = [&]() {
    if (!over_load.empty())
      x.add(Finding{"memory-loading", Severity::Error,
                    x.p.shard_only_loading ? "peak while loading (shard-only reads)" : "peak while loading (full-tensor reads)",
                    "model", over_load,
                    "peak while loading reaches " + gib(worst_load) + " per rank, more than the " + lim.str() +
                        (x.p.shard_only_loading ? "" : ": every rank reads full tensors before slicing its part"),
                    "", x.p.shard_only_loading ? "add ranks" : "read only each rank's slices (shard-only loading)",
                    {{"bytes", worst_load}, {"limit_gib", limit}}});
  };
  if (worst_load > worst_run) {
    add_load();
    add_run();
  } else {
    add_run();
    add_load();
  }
}

}  // namespace

CheckResult check(const ModelConfig& c, const ParallelPlan& p, const CheckOptions& o) {
  p.validate();
  family_of(c);  // a model_type no family reads: ConfigError
  CheckResult r;
  r.config_name = c.name;
  r.config_source = c.source;
  r.rope_scaling = c.rope_scaling_json();
  r.plan = p;
  Ctx x{c, p, r};
  check_load(x);
  check_hf_plan(x);
  check_attention(x);
  check_lm_head(x);
  check_mlp(x);
  check_pipeline(x);
  if (o.memory) check_memory(x, o);
  // Errors first, stable within a severity.
  std::stable_sort(r.findings.begin(), r.findings.end(),
                   [](const Finding& a, const Finding& b) { return int(a.severity) > int(b.severity); });
  return r;
}

}  // namespace sc
