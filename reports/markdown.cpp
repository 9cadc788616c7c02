#include "reports/markdown.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "reports/report_format.h"

namespace sc {

namespace {

// Inline code that survives any backtick inside the text.
std::string code(const std::string& s) {
  const std::string fence = s.find('`') == std::string::npos ? "`" : "``";
  const std::string pad = fence.size() > 1 ? " " : "";
  return fence + pad + s + pad + fence;
}

// A table cell: pipes escaped, newlines flattened.
std::string cell(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n') out += ' ';
    else out += ch;
  }
  return out;
}

const char* icon(const StrategyResult& r) {
  const std::string cls = outcome_class(r);
  if (cls == "ok") return "✅";
  if (cls == "slow") return "⚠️";
  if (cls == "na") return "➖";
  return "❌";
}

std::string gpus_text(int64_t g) { return std::to_string(g) + (g == 1 ? " GPU" : " GPUs"); }

// Verdict with the exact error text set as code.
std::string verdict_md(const StrategyResult& r) {
  if (r.outcome == Outcome::Fails && r.first_error && !r.first_error->error_text.empty() &&
      (r.outcome_source == Source::Predicted || r.error_text_matches))
    return std::string(r.outcome_source == Source::Measured ? "failsᵐ" : "fails") + ": " + code(r.first_error->error_text) +
           (r.outcome_source == Source::Measured ? source_mark(Source::Predicted) : "");
  return r.verdict;
}

std::string sci(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1e", v);
  return b;
}

std::string measured_md(const StrategyResult& x) {
  return measured_line(x, [](const std::string& t) { return code(t); }, [](const std::string& t) { return t; });
}

void model_lines(std::ostringstream& os, const StrategyReport& r) {
  const ModelConfig& c = r.config;
  const std::string params = format_count(c.total_params());
  os << "**Model** " << code(c.model_type) << ": " << c.num_hidden_layers << " layers, hidden " << c.hidden_size
     << ", " << c.num_attention_heads << " query / " << c.num_key_value_heads << " KV heads × " << c.head_dim;
  if (c.is_moe())
    os << ", " << c.num_experts << " experts (top-" << c.num_experts_per_tok << ", " << c.moe_intermediate_size
       << " wide)";
  os << ", vocab " << c.vocab_size << ", " << params << " parameters, " << dtype_torch_name(c.dtype);
  if (!c.rope_scaling_type.empty()) os << ", rope scaling " << code(c.rope_scaling_summary()) << " (no shape change)";
  os << ".  \n";
  os << "**Assumptions**: one forward of batch " << r.options.batch << " × seq " << r.options.seq << " tokens in "
     << dtype_torch_name(r.dtype) << "; **" << format_gib_limit(r.options.gpu_mem_gib)
     << " per GPU** (`--gpu-mem`; default 141 GiB = H200); " << r.options.micro_batches
     << (r.options.micro_batches == 1 ? " micro-batch" : " micro-batches")
     << " for TP × PP (device_map placement always runs one).  \n";
  os << "ᵖ predicted by the static checker and the communication model · ᵐ measured by a harness run.";
  if (r.options.launched) {
    const RunLaunch& l = *r.options.launched;
    int64_t n = 0;
    for (const auto& x : r.results) n += x.run ? 1 : 0;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.0f s", l.seconds);
    os << "  \n**Harness runs** (`--run`): " << n << (n == 1 ? " layout" : " layouts") << " run by the report in " << secs
       << ", each compared with the single-device reference — " << l.scale << ", batch " << l.batch << " × seq "
       << l.seq << ", " << l.dtype << ". The head counts, head_dim, KV heads, experts and top-k are the config's, so "
       << "the outcomes and error texts are the real ones; " << (l.device == "cpu" ? "tokens/s and loading memory are "
       "those of the tiny CPU model, not GPU figures" : "tokens/s are those of the runs' model") << ".";
  }
  os << "\n\n";
}

void verdict_list(std::ostringstream& os, const StrategyReport& r, int64_t g) {
  os << "### On " << gpus_text(g) << "\n\n";
  for (const StrategyResult* x : results_for(r, g)) {
    os << "- " << icon(*x) << " **" << x->strategy.name << "** *(" << origin_name(x->strategy.origin) << ")* — "
       << verdict_md(*x);
    if (x->first_error && x->outcome != Outcome::Works &&
        (x->outcome_source == Source::Predicted || x->error_text_matches)) {
      const Finding& f = *x->first_error;
      const bool where = !f.module.empty() && f.module != "model";
      os << " (" << code(f.id) << (where ? " in " + code(f.module) : "") << ")";
    }
    if (const auto cf = confirmed_failure(*x)) os << " — confirmed on " << cf->where << ": " << code(cf->run_text) << "ᵐ";
    if (x->run) os << "  \n  " << measured_md(*x);
    const std::string not_run = not_run_line(r, *x);
    if (!not_run.empty()) os << "  \n  " << not_run;
    os << "\n";
  }
  os << "\n";
}

// The answer first: one line per GPU count, the largest first (the section the report details).
void recommendations(std::ostringstream& os, const StrategyReport& r) {
  for (const GpuSummary* s : summaries_largest_first(r)) {
    if (s->recommended.empty()) os << "- **Nothing works on " << gpus_text(s->gpus) << "**: " << s->reason << ".\n";
    else os << "- **Recommended on " << gpus_text(s->gpus) << ": " << s->recommended_name << "** — " << s->reason << ".\n";
  }
  if (!r.summaries.empty()) os << "\n";
}

void table(std::ostringstream& os, const StrategyReport& r) {
  os << "### All strategies\n\n";
  os << "| GPUs | strategy | layout | outcome | first failing invariant | memory / GPU | loading peak | comm / token | "
        "GPU busy | correctness | tokens/s |\n";
  os << "|---:|---|---|---|---|---:|---:|---:|---:|---|---:|\n";
  for (const auto& x : r.results) {
    const Strategy& st = x.strategy;
    os << "| " << st.gpus << " | " << cell(st.name) << " | ";
    if (!st.applicable) {
      os << "— | ➖ n/a | " << cell(st.not_applicable) << " | | | | | | |\n";
      continue;
    }
    os << code(st.plan.describe()) << " | " << icon(x) << " " << outcome_label(x) << source_mark(x.outcome_source)
       << " | " << (x.first_error ? code(x.first_error->id) : "—") << " | " << format_gib1(x.memory.per_gpu_bytes())
       << source_mark(Source::Predicted) << " | ";
    if (x.memory.measured_loading_bytes)
      os << format_gib1(*x.memory.measured_loading_bytes) << source_mark(Source::Measured);
    else
      os << format_gib1(x.memory.loading_bytes) << source_mark(Source::Predicted);
    os << " | " << format_bytes(x.comm.total_bytes()) << source_mark(Source::Predicted) << " | "
       << format_percent(x.busy()) << source_mark(Source::Predicted) << " | ";
    if (x.run) {
      os << cell(x.correctness) << source_mark(Source::Measured);
      if (x.max_nmse) os << " (NMSE " << sci(*x.max_nmse) << ")";
      else if (!x.predicted_run_error.empty()) os << (x.error_text_matches ? " (text = predicted)" : " (text ≠ predicted)");
    }
    else os << "not run";
    os << " | ";
    if (x.tokens_per_s) {
      char t[32];
      std::snprintf(t, sizeof t, "%.0f", *x.tokens_per_s);
      os << t << source_mark(Source::Measured);
      if (x.run && !x.run->scale.empty() && x.run->scale != "full widths") os << " (tiny " << x.run->device << ")";
    } else {
      os << "—";
    }
    os << " |\n";
  }
  os << "\n";
  os << "Memory / GPU is the most loaded GPU: max(weights + activations, peak while loading). Comm / token sums TP "
        "all-reduces, EP dispatch + combine, PP transfers and the logits all-gather. GPU busy is 1 − pipeline bubble.\n\n";
}

void details(std::ostringstream& os, const StrategyReport& r) {
  std::ostringstream fails;
  for (const auto& x : r.results) {
    if (!x.first_error) continue;
    const Finding& f = *x.first_error;
    fails << "- **" << gpus_text(x.strategy.gpus) << ", " << x.strategy.name << "** — " << code(f.id);
    if (!f.module.empty()) fails << " in " << code(f.module);
    if (!f.ranks.empty()) fails << " on ranks " << format_ranks(f.ranks);
    fails << "  \n  " << f.message << "\n";
    if (!f.error_text.empty()) fails << "  LibTorch raises: " << code(f.error_text) << "\n";
    if (!f.fix.empty()) fails << "  Fix: " << f.fix << "\n";
  }
  if (!fails.str().empty())
    os << "<details><summary>First failing invariants (exact errors)</summary>\n\n" << fails.str() << "\n</details>\n\n";

  std::ostringstream notes;
  for (const auto& x : r.results) {
    if (!x.note.empty()) notes << "- **" << gpus_text(x.strategy.gpus) << ", " << x.strategy.name << "**: " << x.note << "\n";
  }
  for (const auto& x : r.results) {
    if (!x.run) continue;
    notes << "- **" << gpus_text(x.strategy.gpus) << ", " << x.strategy.name << "** harness run (" << x.run->backend
          << " on " << x.run->device << ", " << code(x.run->plan.describe()) << ", batch " << x.run->plan.batch
          << " × seq " << x.run->plan.seq << "): " << x.run->summary;
    if (!x.run->first_divergence.empty()) notes << "; first divergence: " << x.run->first_divergence;
    if (!x.run->scale.empty() && x.run->scale != "full widths") notes << "; model: " << x.run->scale;
    if (!x.run->load_peak_bytes.empty())
      notes << "; loading peak " << format_bytes(double(*std::max_element(x.run->load_peak_bytes.begin(),
                                                                          x.run->load_peak_bytes.end())))
            << "ᵐ per rank (max)";
    if (x.forward_ms) {
      char t[64];
      std::snprintf(t, sizeof t, "; forward %.1f ms", *x.forward_ms);
      notes << t << "ᵐ";
    }
    notes << "\n";
  }
  for (const auto& run : r.unmatched_runs)
    notes << "- A harness run of " << code(run.plan.describe()) << " (" << run.plan.world_size()
          << " ranks) matches no strategy of this report and is not shown.\n";
  if (!notes.str().empty())
    os << "<details><summary>Notes and harness runs</summary>\n\n" << notes.str() << "\n</details>\n\n";

  if (r.checkpoint) {
    const CheckpointSummary& c = *r.checkpoint;
    os << "<details><summary>Checkpoint " << (c.consistent() ? "matches the config" : "does NOT match the config")
       << "</summary>\n\n";
    os << code(c.path) << ": " << c.tensors << " tensors, " << format_bytes(double(c.bytes)) << ", " << c.dtype
       << "; missing " << c.missing << ", unexpected " << c.unexpected << ", shape mismatches " << c.shape_mismatches
       << ".\n";
    for (const auto& p : c.problems) os << "- " << p << "\n";
    os << "\n</details>\n\n";
  }

  os << "<details><summary>How the figures are computed</summary>\n\n"
     << "- **Outcome, first failing invariant**ᵖ: the static checker (`shardcheck check`) on the layout, with the exact "
        "LibTorch error text.\n"
     << "- **Memory / GPU**ᵖ: weights from the sharding table's slices, activations of one forward of batch × seq; "
        "**loading peak**ᵖ: shard-only reads hold the GPU's slices plus one read buffer, full-tensor reads hold the "
        "stage's unsharded tensors. A harness run replaces the loading peak by its measurement (ᵐ).\n"
     << "- **Communication per token**ᵖ (a = dtype bytes, H = hidden): TP all-reduce 2(n−1)/n·H·a per layer for "
        "attention and for the MLP (experts over expert-TP); EP dispatch + combine 2·top_k·H·a·(ep−1)/ep per sparse "
        "layer; PP H·a per stage boundary; vocab-parallel logits all-gather (tp−1)/tp·vocab·a.\n"
     << "- **GPU busy**ᵖ: 1 − bubble, bubble = (pp−1)/(m+pp−1) for m micro-batches.\n"
     << "- **Correctness, tokens/s**ᵐ: only from harness runs (`--run` launches them, `--runs FILE` attaches "
        "`shardcheck run --json` output). A failing run's texts are held to the checker's prediction for the run's "
        "own batch × seq.\n\n</details>\n";
}

}  // namespace

std::string render_report_markdown(const StrategyReport& r) {
  std::ostringstream os;
  os << "## shardcheck strategy report: " << (r.config.name.empty() ? r.config.source : r.config.name) << "\n\n";
  recommendations(os, r);
  model_lines(os, r);
  if (!r.options.gpus.empty()) {
    const int64_t largest = *std::max_element(r.options.gpus.begin(), r.options.gpus.end());
    verdict_list(os, r, largest);
  }
  table(os, r);
  details(os, r);
  return os.str();
}

}  // namespace sc
