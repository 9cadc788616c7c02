// Strategy comparison: builds the layouts of checks/strategies.h for each GPU count, runs the
// checker, the communication model and the pipeline schedule on each, attaches harness runs, and
// writes one-line verdicts and per-GPU-count recommendations.
#include "checks/strategies.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "checks/checker.h"
#include "checks/tensors.h"
#include "families/family.h"
#include "models/errors.h"
#include "models/safetensors.h"

namespace sc {

const char* const kReportSchema = "shardcheck.report/1";

const char* source_name(Source s) { return s == Source::Measured ? "measured" : "predicted"; }

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::Works: return "works";
    case Outcome::Fails: return "fails";
    case Outcome::OutOfMemory: return "out-of-memory";
    case Outcome::SilentWrong: return "silent-wrong";
    case Outcome::NotApplicable: return "not-applicable";
  }
  return "?";
}

const char* strategy_id(StrategyKind k) {
  switch (k) {
    case StrategyKind::Single: return "single";
    case StrategyKind::LayerPlacement: return "pp";
    case StrategyKind::TpHfAuto: return "tp-hf-auto";
    case StrategyKind::EpFullLoading: return "ep-full-loading";
    case StrategyKind::TpPp: return "tp-pp";
    case StrategyKind::TpReplicateKv: return "tp-replicate-kv";
    case StrategyKind::EpShardOnly: return "ep-shard-only";
    case StrategyKind::TpEp: return "tp-ep";
  }
  return "?";
}

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::Baseline: return "baseline";
    case Origin::Tried: return "tried";
    case Origin::Workaround: return "workaround";
    case Origin::Fix: return "fix";
  }
  return "?";
}

namespace {

std::string s(int64_t v) { return std::to_string(v); }

std::string gib(int64_t bytes) {
  char buf[48];
  if (to_gib(bytes) >= 0.1) std::snprintf(buf, sizeof buf, "%.1f GiB", to_gib(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(1 << 20));
  return buf;
}

std::string gib_limit(double g) {
  char buf[48];
  std::snprintf(buf, sizeof buf, g == std::floor(g) ? "%.0f GiB" : "%.1f GiB", g);
  return buf;
}

std::string bytes_text(double b) {
  char buf[48];
  if (b >= 1024.0 * 1024.0) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024.0));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

// The largest t < g dividing g with whole query and KV heads per rank under hf-auto (1 if none).
int64_t largest_head_aligned_tp(const ModelConfig& c, int64_t g) {
  for (int64_t t = g - 1; t > 1; --t)
    if (g % t == 0 && c.num_attention_heads % t == 0 && c.num_key_value_heads % t == 0) return t;
  return 1;
}

ParallelPlan base_plan(const ModelConfig& c, const StrategyOptions& o) {
  ParallelPlan p;
  p.batch = o.batch;
  p.seq = o.seq;
  p.dtype = o.dtype ? *o.dtype : c.dtype;
  p.micro_batches = 1;
  p.shard_only_loading = true;
  p.style = PlanStyle::HfAuto;
  return p;
}

}  // namespace

std::vector<Strategy> strategies_for(const ModelConfig& c, int64_t g, const StrategyOptions& o) {
  std::vector<Strategy> out;
  const ParallelPlan base = base_plan(c, o);
  auto add = [&](StrategyKind k, Origin origin, std::string family, std::string name, std::string desc,
                 auto&& set) -> Strategy& {
    Strategy st;
    st.kind = k;
    st.origin = origin;
    st.gpus = g;
    st.plan = base;
    set(st.plan);
    st.family = std::move(family);
    st.name = std::move(name);
    st.description = std::move(desc);
    out.push_back(std::move(st));
    return out.back();
  };
  auto not_moe = [&](Strategy& st) {
    if (!c.is_moe()) {
      st.applicable = false;
      st.not_applicable = c.name + " is a dense model: no experts to distribute";
    }
  };
  const std::string G = s(g);
  if (g == 1) {
    add(StrategyKind::Single, Origin::Baseline, "Single GPU", "Single GPU", "the whole model on one GPU (the reference)",
        [](ParallelPlan&) {});
    return out;
  }
  add(StrategyKind::LayerPlacement, Origin::Tried, "Layer placement (PP)", "PP=" + G + " (device_map)",
      "device_map-style layer placement: " + G + " contiguous groups of layers, one per GPU; the forward "
      "visits them one after another (one micro-batch)",
      [&](ParallelPlan& p) { p.pp = g; });
  add(StrategyKind::TpHfAuto, Origin::Tried, "TP (hf-auto)", "TP=" + G + " (hf-auto)",
      "HF tp_plan=\"auto\": q/k/v_proj colwise on raw output columns, o_proj rowwise, experts TP-split",
      [&](ParallelPlan& p) { p.tp = g; });
  not_moe(add(StrategyKind::EpFullLoading, Origin::Tried, "EP (full-tensor loading)", "EP=" + G + " (full-tensor loading)",
              "HF expert parallelism: experts split over " + G + " GPUs, attention replicated; every GPU reads "
              "full tensors before slicing its part",
              [&](ParallelPlan& p) {
                p.ep = g;
                p.shard_only_loading = false;
              }));
  const int64_t t = largest_head_aligned_tp(c, g);
  Strategy& tpp = add(StrategyKind::TpPp, Origin::Workaround, "TP x PP (hf-auto)",
                      "TP=" + s(t) + " x PP=" + s(g / t) + " (hf-auto)",
                      "TP=" + s(t) + " is the largest TP below " + G + " that hf-auto splits into whole heads (" +
                          s(c.num_attention_heads) + " query / " + s(c.num_key_value_heads) +
                          " KV heads); the remaining factor " + s(g / t) + " becomes pipeline stages",
                      [&](ParallelPlan& p) {
                        p.tp = t;
                        p.pp = g / t;
                        p.micro_batches = o.micro_batches;
                      });
  if (t == 1) {
    bool has_divisor = false;
    for (int64_t d = 2; d < g; ++d) has_divisor |= g % d == 0;
    tpp.applicable = false;
    tpp.name = "TP x PP (hf-auto)";
    tpp.not_applicable = has_divisor ? "no TP size that divides " + G + " splits the " + s(c.num_attention_heads) +
                                           " query / " + s(c.num_key_value_heads) + " KV heads into whole heads"
                                     : G + " GPUs cannot be split into TP > 1 and PP > 1 (see layer placement and TP)";
  }
  add(StrategyKind::TpReplicateKv, Origin::Fix, "TP (replicate-kv)", "TP=" + G + " (replicate-kv)",
      "vLLM-style attention: whole KV heads per GPU, each of the " + s(c.num_key_value_heads) +
          " KV heads replicated on tp / kv GPUs when tp > kv",
      [&](ParallelPlan& p) {
        p.tp = g;
        p.style = PlanStyle::ReplicateKv;
      });
  not_moe(add(StrategyKind::EpShardOnly, Origin::Fix, "EP (shard-only loading)", "EP=" + G + " (shard-only loading)",
              "expert parallelism reading only each GPU's own experts from the checkpoint",
              [&](ParallelPlan& p) { p.ep = g; }));
  not_moe(add(StrategyKind::TpEp, Origin::Fix, "TP x EP (replicate-kv)", "TP=" + G + " x EP=" + G + " (replicate-kv)",
              "attention tensor-parallel over " + G + " GPUs with replicated KV heads; whole experts per GPU (" +
                  (c.is_moe() ? s(c.num_experts / std::max<int64_t>(g, 1)) : std::string("0")) + " each)",
              [&](ParallelPlan& p) {
                p.tp = g;
                p.ep = g;
                p.style = PlanStyle::ReplicateKv;
              }));
  return out;
}

namespace {
bool is_reduced(const RunResult& run) { return !run.scale.empty() && run.scale != "full widths"; }
}  // namespace

std::optional<ConfirmedFailure> confirmed_failure(const StrategyResult& r) {
  if (r.outcome != Outcome::Fails || r.outcome_source != Source::Measured || !r.error_text_matches || !r.run ||
      r.run->errors.empty() || !r.first_error || r.first_error->error_text.empty())
    return std::nullopt;
  return ConfirmedFailure{r.first_error->error_text, r.run->errors.front().what,
                          is_reduced(*r.run) ? "reduced-width ranks" : "the ranks"};
}

namespace {

Outcome outcome_of_finding(const Finding& f) {
  if (f.id == "memory" || f.id == "memory-loading") return Outcome::OutOfMemory;
  if (f.id == "gqa-misaligned") return Outcome::SilentWrong;
  return Outcome::Fails;
}

Outcome outcome_of_run(const RunResult& r) {
  switch (r.verdict) {
    case Verdict::Match:
    case Verdict::BenignRouterFlip: return Outcome::Works;
    case Verdict::Mismatch: return Outcome::SilentWrong;
    case Verdict::Error: break;
  }
  for (const auto& e : r.errors)
    if (e.what.find("out of memory") != std::string::npos || e.what.find("OutOfMemory") != std::string::npos)
      return Outcome::OutOfMemory;
  return Outcome::Fails;
}

bool same_layout(const ParallelPlan& a, const ParallelPlan& b) {
  return a.tp == b.tp && a.ep == b.ep && a.pp == b.pp && a.dp == b.dp && a.style == b.style &&
         (a.ep == 1 || a.shard_only_loading == b.shard_only_loading);
}

// Bubble (pp-1)/(m+pp-1), reduced.
void set_bubble(StrategyResult& r, const ParallelPlan& p) {
  r.micro_batches = p.micro_batches;
  const int64_t num = p.pp - 1, den = p.micro_batches + p.pp - 1;
  const int64_t g = num == 0 ? den : std::gcd(num, den);
  r.bubble_num = num / g;
  r.bubble_den = den / g;
  r.bubble = double(num) / double(den);
}

std::string verdict_text(const StrategyResult& r, const ParallelPlan& p, double limit) {
  const MemoryFigures& m = r.memory;
  std::string v;
  switch (r.outcome) {
    case Outcome::NotApplicable: return "not applicable: " + r.strategy.not_applicable;
    case Outcome::Fails:
      if (const auto cf = confirmed_failure(r))
        return "fails: " + cf->users_text + " (confirmed on " + cf->where + ": " + cf->run_text + ")";
      if (r.outcome_source == Source::Measured && r.run && !r.run->errors.empty())
        return "fails (measured): " + r.run->errors.front().what;
      if (r.first_error)
        return "fails: " + (r.first_error->error_text.empty() ? r.first_error->message : r.first_error->error_text);
      return "fails";
    case Outcome::OutOfMemory:
      if (r.outcome_source == Source::Measured) return "out of memory (measured)";
      if (m.loading_bytes > m.run_bytes)
        return "out of memory while loading: " + gib(m.loading_bytes) + " per GPU > " + gib_limit(limit) +
               (p.shard_only_loading ? "" : " (every GPU reads full tensors before slicing)");
      return "out of memory: " + gib(m.run_bytes) + " per GPU (weights + activations) > " + gib_limit(limit);
    case Outcome::SilentWrong:
      if (r.outcome_source == Source::Measured)
        return "runs but computes wrong results (measured: " + r.run->summary + ")";
      return "runs but computes wrong results: " + (r.first_error ? r.first_error->message : std::string());
    case Outcome::Works: break;
  }
  v = r.outcome_source == Source::Measured ? "works (measured: " + r.correctness + ")" : "works";
  if (p.pp > 1) {
    const std::string who =
        p.stage_size() == 1 ? "one GPU" : "one stage (" + s(p.stage_size()) + " GPUs)";
    if (p.micro_batches == 1)
      v += ", but only " + who + " computes at a time: bubble (pp-1)/(m+pp-1) = " + s(r.bubble_num) + "/" +
           s(r.bubble_den) + " of GPU time idle";
    else
      v += "; pipeline bubble " + s(r.bubble_num) + "/" + s(r.bubble_den) + " with " + s(p.micro_batches) +
           " micro-batches";
  }
  if (limit > 0 && to_gib(m.per_gpu_bytes()) > 0.9 * limit)
    v += "; tight on memory: " + gib(m.per_gpu_bytes()) + " of " + gib_limit(limit);
  return v;
}

StrategyResult evaluate(const ModelConfig& c, const Strategy& st, const StrategyOptions& o) {
  StrategyResult r;
  r.strategy = st;
  r.correctness = "not-run";
  r.memory.limit_gib = o.gpu_mem_gib;
  if (st.applicable) {
    try {
      st.plan.validate();
    } catch (const PlanError& e) {
      r.strategy.applicable = false;
      r.strategy.not_applicable = e.problem();
    }
  }
  if (!r.strategy.applicable) {
    r.outcome = r.predicted_outcome = Outcome::NotApplicable;
    r.verdict = verdict_text(r, st.plan, o.gpu_mem_gib);
    return r;
  }
  const ParallelPlan& p = st.plan;
  CheckOptions co;
  co.memory_limit_gib = o.gpu_mem_gib;
  const CheckResult cr = check(c, p, co);
  for (const auto& f : cr.findings)
    if (f.severity != Severity::Info) r.findings.push_back(f);
  if (const Finding* f = cr.first_error()) r.first_error = *f;
  r.predicted_outcome = r.first_error ? outcome_of_finding(*r.first_error) : Outcome::Works;
  r.outcome = r.predicted_outcome;

  r.memory.per_rank = cr.memory;
  for (const auto& m : cr.memory) {
    r.memory.weight_bytes = std::max(r.memory.weight_bytes, m.weight_bytes);
    r.memory.run_bytes = std::max(r.memory.run_bytes, m.weight_bytes + m.activation_bytes);
    r.memory.loading_bytes =
        std::max(r.memory.loading_bytes, p.shard_only_loading ? m.load_peak_shard_bytes : m.load_peak_full_bytes);
  }
  r.comm = estimate_comm(c, p);
  set_bubble(r, p);
  return r;
}

// Attach a harness run: measured figures replace predicted ones and are marked as measured. The
// prediction the run is held to is the checker's for the run's own batch x seq (a tiny-width CPU
// run of `report --run` uses a smaller batch than the report's figures; the error text has it).
void attach_run(const ModelConfig& c, StrategyResult& r, const RunResult& run, double limit) {
  r.run = run;
  r.correctness = verdict_name(run.verdict);
  ParallelPlan q = r.strategy.plan;
  q.batch = run.plan.batch;
  q.seq = run.plan.seq;
  q.micro_batches = run.plan.micro_batches;
  q.dtype = run.plan.dtype;
  bool predicted_raise = false;
  try {
    q.validate();
    const CheckResult cr = check(c, q);
    if (const Finding* f = cr.predicted_runtime_failure()) {
      predicted_raise = true;
      r.predicted_run_error = f->error_text;
    }
  } catch (const std::exception&) {
    predicted_raise = r.predicted_outcome == Outcome::Fails;
  }
  const Outcome measured = outcome_of_run(run);
  const bool reduced = is_reduced(run);
  auto add_note = [&](const std::string& n) { r.note += (r.note.empty() ? "" : " ") + n; };
  if (reduced && r.predicted_outcome == Outcome::OutOfMemory) {
    // Memory is the failure at full size: a reduced-width run cannot show it, only that the layout
    // itself computes correctly. The outcome stays the prediction.
    add_note(std::string("Out of memory at full size (predicted); the reduced-width run (") + run.scale + ") " +
             (measured == Outcome::Works ? "computes correctly: the layout is right, the memory is not."
                                         : std::string("is ") + outcome_name(measured) + "."));
  } else {
    r.outcome = measured;
    r.outcome_source = Source::Measured;
  }
  if (reduced) {
    const Outcome expected = predicted_raise                                  ? Outcome::Fails
                             : r.predicted_outcome == Outcome::SilentWrong ? Outcome::SilentWrong
                                                                           : Outcome::Works;
    r.prediction_disagrees = measured != expected;
  } else {
    r.prediction_disagrees = r.outcome != r.predicted_outcome;
  }
  if (measured == Outcome::Fails && !r.predicted_run_error.empty()) {
    r.error_text_matches = !run.errors.empty() && run.errors.front().what == r.predicted_run_error;
    if (!r.error_text_matches) {
      r.prediction_disagrees = true;
      add_note("The ranks raised `" + (run.errors.empty() ? std::string("(no error text)") : run.errors.front().what) +
               "`, the checker predicted `" + r.predicted_run_error + "`.");
    }
  }
  for (const auto& cmp : run.comparisons) {
    r.max_nmse = std::max(r.max_nmse.value_or(0.0), cmp.nmse);
    r.max_abs = std::max(r.max_abs.value_or(0.0), cmp.max_abs);
    r.router_flips += cmp.router_flips;
    r.router_flips_benign += cmp.router_flips_benign;
  }
  // A reduced-width run's loading peak is that of the reduced model: it stays in the run's JSON
  // and notes, not beside the full-size figures.
  if (!reduced && !run.load_peak_bytes.empty()) {
    r.memory.measured_loading_per_rank = run.load_peak_bytes;
    r.memory.measured_loading_bytes = *std::max_element(run.load_peak_bytes.begin(), run.load_peak_bytes.end());
  }
  if (run.tokens_per_s > 0) r.tokens_per_s = run.tokens_per_s;
  if (run.forward_ms > 0) r.forward_ms = run.forward_ms;
  if (r.prediction_disagrees)
    add_note(std::string("The harness run disagrees with the prediction (predicted: ") +
             outcome_name(reduced && predicted_raise ? Outcome::Fails : r.predicted_outcome) +
             ", measured: " + outcome_name(measured) + ").");
  r.verdict = verdict_text(r, r.strategy.plan, limit);
}

// Why TP x PP rather than TP=t alone on t of the g GPUs: the numbers of both.
std::string tp_pp_note(const ModelConfig& c, const StrategyResult& r, const StrategyOptions& o) {
  const ParallelPlan& p = r.strategy.plan;
  ParallelPlan alone = p;
  alone.pp = 1;
  alone.micro_batches = 1;
  CheckOptions co;
  co.memory_limit_gib = o.gpu_mem_gib;
  const CheckResult a = check(c, alone, co);
  const int64_t g = r.strategy.gpus;
  std::string n = "Chosen over TP=" + s(p.tp) + " alone on " + s(p.tp) + " of the " + s(g) + " GPUs";
  const bool alone_oom = a.first_error() && outcome_of_finding(*a.first_error()) == Outcome::OutOfMemory;
  if (alone_oom)
    n += ", which does not fit (" + gib(a.max_total_bytes()) + " per GPU > " + gib_limit(o.gpu_mem_gib) + ")";
  else
    n += " (" + gib(a.max_total_bytes()) + " per GPU, " + s(g - p.tp) + " GPUs idle)";
  n += ": PP=" + s(p.pp) + " puts every GPU to use and needs " + gib(r.memory.per_gpu_bytes()) +
       " per GPU, leaving room for larger batches or a KV cache. ";
  if (p.micro_batches == 1)
    n += "With one micro-batch the " + s(p.pp) + " stages take turns (bubble " + s(r.bubble_num) + "/" +
         s(r.bubble_den) + "), so tokens/s equal TP=" + s(p.tp) + " alone; with m micro-batches the bubble is " +
         (p.pp == 2 ? std::string("1") : "(" + s(p.pp - 1) + ")") + "/(m+" + s(p.pp - 1) + ").";
  else
    n += "With " + s(p.micro_batches) + " micro-batches the bubble is " + s(r.bubble_num) + "/" + s(r.bubble_den) + ".";
  return n;
}

GpuSummary summarize(const std::vector<const StrategyResult*>& rs, int64_t g, double limit) {
  GpuSummary sum;
  sum.gpus = g;
  std::vector<const StrategyResult*> ok;
  for (const auto* r : rs)
    if (r->outcome == Outcome::Works) ok.push_back(r);
  if (ok.empty()) {
    int64_t least = 0;
    for (const auto* r : rs)
      if (r->outcome == Outcome::OutOfMemory && (least == 0 || r->memory.per_gpu_bytes() < least))
        least = r->memory.per_gpu_bytes();
    sum.reason = "no strategy works on " + s(g) + " GPU" + (g == 1 ? "" : "s");
    if (least > 0) sum.reason += "; the smallest need is " + gib(least) + " per GPU > " + gib_limit(limit);
    return sum;
  }
  // Most GPU time busy, then least communication, then least memory; report order breaks ties.
  auto better = [](const StrategyResult* a, const StrategyResult* b) {
    if (std::fabs(a->busy() - b->busy()) > 1e-9) return a->busy() > b->busy();
    if (std::fabs(a->comm.total_bytes() - b->comm.total_bytes()) > 0.5)
      return a->comm.total_bytes() < b->comm.total_bytes();
    if (a->memory.per_gpu_bytes() != b->memory.per_gpu_bytes())
      return a->memory.per_gpu_bytes() < b->memory.per_gpu_bytes();
    return a->memory.loading_bytes < b->memory.loading_bytes;
  };
  // min_element returns the first of equally good strategies: report order breaks the last ties.
  const StrategyResult* best = *std::min_element(ok.begin(), ok.end(), better);
  sum.recommended = strategy_id(best->strategy.kind);
  sum.recommended_name = best->strategy.name;
  char busy[32];
  std::snprintf(busy, sizeof busy, "%.0f%%", 100.0 * best->busy());
  sum.reason = (best->busy() > 0.999 ? "all " + s(g) + " GPUs busy" : std::string(busy) + " of GPU time busy") + ", " +
               bytes_text(best->comm.total_bytes()) + " of communication per token" +
               (ok.size() > 1 ? " (" + std::string(best->busy() > 0.999 ? "least among" : "best of") +
                                    " the working strategies)"
                              : "") +
               ", " + gib(best->memory.per_gpu_bytes()) + " per GPU of " + gib_limit(limit);
  return sum;
}

}  // namespace

StrategyReport compare_strategies(const ModelConfig& c, const StrategyOptions& o, const std::vector<RunResult>& runs) {
  StrategyReport rep;
  rep.config = c;
  rep.options = o;
  rep.dtype = o.dtype ? *o.dtype : c.dtype;
  for (int64_t g : o.gpus) {
    if (g < 1) throw PlanError("--gpus", s(g), "GPU counts must be positive");
    for (const Strategy& st : strategies_for(c, g, o)) {
      StrategyResult r = evaluate(c, st, o);
      if (st.kind == StrategyKind::TpPp && r.strategy.applicable) r.note = tp_pp_note(c, r, o);
      r.verdict = verdict_text(r, r.strategy.plan, o.gpu_mem_gib);
      rep.results.push_back(std::move(r));
    }
  }
  for (const RunResult& run : runs) {
    bool used = false;
    for (auto& r : rep.results) {
      if (!r.strategy.applicable || r.run || r.strategy.gpus != run.plan.world_size()) continue;
      if (!same_layout(r.strategy.plan, run.plan)) continue;
      attach_run(c, r, run, o.gpu_mem_gib);
      used = true;
      break;
    }
    if (!used) rep.unmatched_runs.push_back(run);
  }
  if (o.launched)
    for (auto& r : rep.results) {
      if (r.run || !r.strategy.applicable) continue;
      const std::string why = why_not_run(r);
      r.note += (r.note.empty() ? "" : " ") + std::string("Not run: ") + (why.empty() ? "no run of this layout." : why);
    }
  for (int64_t g : o.gpus) rep.summaries.push_back(summarize(results_for(rep, g), g, o.gpu_mem_gib));
  return rep;
}

std::string why_not_run(const StrategyResult& r) {
  if (!r.strategy.applicable) return "not applicable";
  if (r.predicted_outcome == Outcome::OutOfMemory) {
    const MemoryFigures& m = r.memory;
    return "not run at full size: memory is the failure (predicted " + gib(m.per_gpu_bytes()) + " per GPU" +
           (m.loading_bytes > m.run_bytes ? " while loading" : "") + " > " + gib_limit(m.limit_gib) +
           "), which a reduced-width run cannot show.";
  }
  if (r.predicted_outcome == Outcome::Fails && r.first_error) {
    // Only shape failures raise in a run; other errors are plans HF refuses before any forward.
    CheckResult cr;
    cr.findings = r.findings;
    if (!cr.predicted_runtime_failure())
      return "`" + r.first_error->id + "` is refused by HF before any forward; the harness does not enforce it.";
  }
  return "";
}

std::vector<const StrategyResult*> results_for(const StrategyReport& r, int64_t gpus) {
  std::vector<const StrategyResult*> out;
  for (const auto& x : r.results)
    if (x.strategy.gpus == gpus) out.push_back(&x);
  return out;
}

std::vector<const GpuSummary*> summaries_largest_first(const StrategyReport& r) {
  std::vector<const GpuSummary*> out;
  for (const auto& s : r.summaries) out.push_back(&s);
  std::stable_sort(out.begin(), out.end(), [](const GpuSummary* a, const GpuSummary* b) { return a->gpus > b->gpus; });
  return out;
}

const StrategyResult* find_result(const StrategyReport& r, int64_t gpus, const std::string& id) {
  for (const auto& x : r.results)
    if (x.strategy.gpus == gpus && id == strategy_id(x.strategy.kind)) return &x;
  return nullptr;
}

void CheckpointSummary::require_loadable() const {
  const int64_t n = missing + shape_mismatches;
  if (n == 0) return;
  throw CheckpointError(path, first_tensor, first_value,
                        "the checkpoint does not match its config: " + first_problem +
                            (n > 1 ? " (and " + std::to_string(n - 1) + " more missing or misshapen)" : ""));
}

CheckpointSummary summarize_checkpoint(const ModelConfig& c, const std::string& path) {
  CheckpointSummary s;
  s.path = path;
  const Checkpoint ck = Checkpoint::open(path);
  std::map<std::string, std::vector<int64_t>> expected;
  std::map<std::string, std::string> legacy;  // the family's older spelling -> the HF 5.17 name
  for (const auto& t : model_tensors(c)) {
    expected[t.name] = t.shape;
    const std::string old = legacy_tensor_name(c, t.name);
    if (!old.empty()) legacy[old] = t.name;
  }
  std::map<std::string, int64_t> dtypes;
  // blocking: a tensor the loader needs is missing or has another shape.
  auto problem = [&](const std::string& tensor, const std::string& value, std::string text, bool blocking = true) {
    if (blocking && s.first_tensor.empty()) {
      s.first_tensor = tensor;
      s.first_value = value;
      s.first_problem = text;
    }
    if (s.problems.size() < 8) s.problems.push_back(std::move(text));
  };
  auto shape_text = [](const std::vector<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
    return out + "]";
  };
  // Experts may be stored packed per layer (as the loader reads them: mlp.experts.gate_up_proj
  // [E, 2I, H] or [E, H, 2I], mlp.experts.down_proj [E, H, I] or [E, I, H], optionally ".weight").
  const int64_t E = c.num_experts, I = c.moe_intermediate_size, H = c.hidden_size;
  std::map<int64_t, int> packed_parts;  // layer -> 1 (gate_up) | 2 (down)
  auto packed = [&](const std::string& name, const std::vector<int64_t>& shape) -> bool {
    const std::string pre = "model.layers.";
    if (!c.is_moe() || name.rfind(pre, 0) != 0) return false;
    const size_t dot = name.find('.', pre.size());
    if (dot == std::string::npos) return false;
    const std::string idx = name.substr(pre.size(), dot - pre.size());
    if (idx.empty() || idx.size() > 9 || idx.find_first_not_of("0123456789") != std::string::npos) return false;
    const int64_t l = std::stoll(idx);
    std::string rest = name.substr(dot + 1);
    if (rest.size() > 7 && rest.compare(rest.size() - 7, 7, ".weight") == 0) rest.resize(rest.size() - 7);
    const bool ok = (rest == "mlp.experts.gate_up_proj" &&
                     (shape == std::vector<int64_t>{E, 2 * I, H} || shape == std::vector<int64_t>{E, H, 2 * I})) ||
                    (rest == "mlp.experts.down_proj" &&
                     (shape == std::vector<int64_t>{E, H, I} || shape == std::vector<int64_t>{E, I, H}));
    if (ok && l < c.num_hidden_layers && c.layer_is_sparse(l)) packed_parts[l] |= rest == "mlp.experts.down_proj" ? 2 : 1;
    return ok;
  };
  for (const auto& name : ck.names()) {
    const TensorInfo& info = ck.info(name);
    ++s.tensors;
    s.bytes += int64_t(info.nbytes());
    dtypes[dtype_st_name(info.dtype)]++;
    auto it = expected.find(name);
    if (it == expected.end() && legacy.count(name)) it = expected.find(legacy.at(name));
    if (it == expected.end() && packed(name, info.shape)) continue;
    if (it == expected.end()) {
      ++s.unexpected;
      problem(name, shape_text(info.shape), "unexpected tensor " + name + " " + shape_text(info.shape), false);
    } else if (it->second != info.shape) {
      ++s.shape_mismatches;
      problem(name, shape_text(info.shape),
              name + " has shape " + shape_text(info.shape) + ", the config implies " + shape_text(it->second));
    }
  }
  std::map<std::string, int64_t> expert_layer;
  for (const auto& t : model_tensors(c))
    if (t.expert >= 0) expert_layer[t.name] = t.layer;
  for (const auto& [name, shape] : expected)
    if (!ck.has(name) && !ck.has(legacy_tensor_name(c, name)) &&
        !(expert_layer.count(name) && packed_parts[expert_layer.at(name)] == 3)) {
      ++s.missing;
      problem(name, "(missing)", "missing tensor " + name + " " + shape_text(shape));
    }
  int64_t most = -1;
  for (const auto& [d, n] : dtypes)
    if (n > most) {
      most = n;
      s.dtype = d;
    }
  return s;
}

// ---- JSON (docs/report-schema.md) ----

namespace {

nlohmann::json fig(double v, Source src) { return {{"value", v}, {"source", source_name(src)}}; }
nlohmann::json fig(int64_t v, Source src) { return {{"value", v}, {"source", source_name(src)}}; }

}  // namespace

void to_json(nlohmann::json& j, const CheckpointSummary& s) {
  j = {{"path", s.path},         {"tensors", s.tensors},     {"bytes", s.bytes},
       {"dtype", s.dtype},       {"missing", s.missing},     {"unexpected", s.unexpected},
       {"shape_mismatches", s.shape_mismatches}, {"consistent", s.consistent()}, {"problems", s.problems}};
}

void to_json(nlohmann::json& j, const StrategyResult& r) {
  const Strategy& st = r.strategy;
  const bool app = st.applicable;
  j = nlohmann::json::object();
  j["gpus"] = st.gpus;
  j["id"] = strategy_id(st.kind);
  j["name"] = st.name;
  j["family"] = st.family;
  j["origin"] = origin_name(st.origin);
  j["description"] = st.description;
  j["applicable"] = app;
  j["not_applicable_reason"] = st.not_applicable;
  j["layout"] = app ? st.plan.describe() : "";
  j["plan"] = app ? nlohmann::json(st.plan) : nlohmann::json(nullptr);
  j["outcome"] = {{"value", outcome_name(r.outcome)}, {"source", source_name(r.outcome_source)}};
  j["predicted_outcome"] = outcome_name(r.predicted_outcome);
  j["prediction_disagrees"] = r.prediction_disagrees;
  j["verdict"] = r.verdict;
  j["first_failing_invariant"] = r.first_error ? nlohmann::json(*r.first_error) : nlohmann::json(nullptr);
  j["findings"] = r.findings;
  j["correctness"] = {{"value", r.correctness},
                      {"source", r.run ? nlohmann::json("measured") : nlohmann::json(nullptr)},
                      {"summary", r.run ? r.run->summary : ""},
                      {"first_divergence", r.run ? r.run->first_divergence : ""}};
  if (r.run) {
    // What the run observed next to what the checker predicted for the run's own shape.
    nlohmann::json raised = nlohmann::json::array();
    for (const auto& e : r.run->errors) {
      auto it = std::find_if(raised.begin(), raised.end(), [&](const nlohmann::json& x) { return x["text"] == e.what; });
      if (it == raised.end()) raised.push_back({{"text", e.what}, {"ranks", nlohmann::json::array({e.rank})}});
      else (*it)["ranks"].push_back(e.rank);
    }
    auto opt = [](const std::optional<double>& v) { return v ? fig(*v, Source::Measured) : nlohmann::json(nullptr); };
    j["correctness"]["scale"] = r.run->scale;
    j["correctness"]["batch"] = r.run->plan.batch;
    j["correctness"]["seq"] = r.run->plan.seq;
    j["correctness"]["predicted_error_text"] =
        r.predicted_run_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.predicted_run_error);
    j["correctness"]["observed_errors"] = raised;
    j["correctness"]["error_text_matches"] = r.error_text_matches;
    j["correctness"]["max_nmse"] = opt(r.max_nmse);
    j["correctness"]["max_abs"] = opt(r.max_abs);
    j["correctness"]["tolerance_nmse"] = r.run->tolerance_nmse;
    j["correctness"]["router_flips"] = r.router_flips;
    j["correctness"]["router_flips_benign"] = r.router_flips_benign;
  }
  j["note"] = r.note;
  if (!app) {
    j["memory"] = nullptr;
    j["communication"] = nullptr;
    j["pipeline"] = nullptr;
  } else {
    nlohmann::json ranks = nlohmann::json::array();
    for (size_t i = 0; i < r.memory.per_rank.size(); ++i) {
      const RankMemory& m = r.memory.per_rank[i];
      ranks.push_back({{"rank", m.rank},
                       {"stage", m.stage},
                       {"layers", m.layers},
                       {"weight_bytes", m.weight_bytes},
                       {"activation_bytes", m.activation_bytes},
                       {"loading_peak_bytes", st.plan.shard_only_loading ? m.load_peak_shard_bytes : m.load_peak_full_bytes},
                       {"measured_loading_peak_bytes", i < r.memory.measured_loading_per_rank.size()
                                                           ? nlohmann::json(r.memory.measured_loading_per_rank[i])
                                                           : nlohmann::json(nullptr)}});
    }
    j["memory"] = {{"limit_gib", r.memory.limit_gib},
                   {"per_gpu_bytes", fig(r.memory.per_gpu_bytes(), Source::Predicted)},
                   {"weights_bytes", fig(r.memory.weight_bytes, Source::Predicted)},
                   {"run_bytes", fig(r.memory.run_bytes, Source::Predicted)},
                   {"loading_peak_bytes", fig(r.memory.loading_bytes, Source::Predicted)},
                   {"measured_loading_peak_bytes", r.memory.measured_loading_bytes
                                                       ? fig(*r.memory.measured_loading_bytes, Source::Measured)
                                                       : nlohmann::json(nullptr)},
                   {"loading", st.plan.shard_only_loading ? "shard-only" : "full-tensor"},
                   {"per_rank", ranks}};
    j["communication"] = r.comm;
    j["pipeline"] = {{"pp", st.plan.pp},
                     {"micro_batches", r.micro_batches},
                     {"bubble_fraction", r.bubble},
                     {"bubble", std::to_string(r.bubble_num) + "/" + std::to_string(r.bubble_den)},
                     {"busy_fraction", r.busy()},
                     {"source", "predicted"}};
  }
  if (r.tokens_per_s || r.forward_ms) {
    j["throughput"] = {{"tokens_per_s", r.tokens_per_s ? fig(*r.tokens_per_s, Source::Measured) : nlohmann::json(nullptr)},
                       {"forward_ms", r.forward_ms ? fig(*r.forward_ms, Source::Measured) : nlohmann::json(nullptr)},
                       {"reference_ms", r.run && r.run->reference_ms > 0 ? fig(r.run->reference_ms, Source::Measured)
                                                                         : nlohmann::json(nullptr)},
                       {"scale", r.run ? r.run->scale : ""},
                       {"backend", r.run ? r.run->backend : ""},
                       {"device", r.run ? r.run->device : ""},
                       {"tokens", r.run ? r.run->plan.batch * r.run->plan.seq : 0}};
  } else {
    j["throughput"] = nullptr;
  }
  j["run"] = r.run ? nlohmann::json(*r.run) : nlohmann::json(nullptr);
}

void to_json(nlohmann::json& j, const StrategyReport& r) {
  const ModelConfig& c = r.config;
  j = nlohmann::json::object();
  j["schema"] = kReportSchema;
  j["generator"] = "shardcheck 0.1.0";
  j["config"] = {{"name", c.name},
                 {"source", c.source},
                 {"model_type", c.model_type},
                 {"layers", c.num_hidden_layers},
                 {"sparse_layers", c.num_sparse_layers()},
                 {"hidden_size", c.hidden_size},
                 {"attention_heads", c.num_attention_heads},
                 {"kv_heads", c.num_key_value_heads},
                 {"head_dim", c.head_dim},
                 {"experts", c.num_experts},
                 {"experts_per_token", c.num_experts_per_tok},
                 {"moe_intermediate_size", c.moe_intermediate_size},
                 {"intermediate_size", c.intermediate_size},
                 {"vocab_size", c.vocab_size},
                 {"parameters", c.total_params()},
                 {"dtype", dtype_torch_name(c.dtype)},
                 {"rope_scaling", c.rope_scaling_json()}};
  j["assumptions"] = {{"gpus", r.options.gpus},
                      {"batch", r.options.batch},
                      {"seq", r.options.seq},
                      {"gpu_mem_gib", r.options.gpu_mem_gib},
                      {"micro_batches", r.options.micro_batches},
                      {"dtype", dtype_torch_name(r.dtype)}};
  j["checkpoint"] = r.checkpoint ? nlohmann::json(*r.checkpoint) : nlohmann::json(nullptr);
  j["strategies"] = r.results;
  nlohmann::json sums = nlohmann::json::array();
  for (const auto& s : r.summaries)
    sums.push_back({{"gpus", s.gpus},
                    {"recommended", s.recommended.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.recommended)},
                    {"recommended_name", s.recommended_name},
                    {"reason", s.reason}});
  j["summaries"] = sums;
  j["unmatched_runs"] = r.unmatched_runs;
  if (r.options.launched) {
    const RunLaunch& l = *r.options.launched;
    j["runs_launched"] = {{"backend", l.backend}, {"device", l.device}, {"scale", l.scale}, {"batch", l.batch},
                          {"seq", l.seq},         {"dtype", l.dtype},   {"seconds", l.seconds}};
  } else {
    j["runs_launched"] = nullptr;
  }
}

}  // namespace sc
