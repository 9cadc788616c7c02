#include "reports/html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "reports/report_format.h"
#include "reports/svg.h"

namespace sc {

namespace {

std::string esc(const std::string& s) { return xml_escape(s); }

using svg::nice_step;
using svg::num;
using svg::tick_label;

// Colours of the page and the charts (GitHub-like palette: readable in print and on screen).
struct Palette {
  const char* weights = "#2f6fbf";
  const char* acts = "#9cc0ee";
  const char* over_w = "#cf222e";
  const char* over_a = "#f4a7ac";
  const char* fail_w = "#8c959f";
  const char* fail_a = "#d0d7de";
  const char* limit = "#cf222e";
  const char* ink = "#1f2328";
  const char* muted = "#57606a";
  const char* grid = "#eaeef2";
  const char* measured = "#e16f24";
  const char* tp = "#2f6fbf";
  const char* ep = "#e16f24";
  const char* pp = "#1f883d";
  const char* logits = "#8250df";
} const kColor;

const char* class_fill(const std::string& cls) {
  if (cls == "ok") return "#1a7f37";
  if (cls == "slow") return "#9a6700";
  if (cls == "na") return "#57606a";
  return "#cf222e";
}
const char* class_bg(const std::string& cls) {
  if (cls == "ok") return "#dafbe1";
  if (cls == "slow") return "#fff8c5";
  if (cls == "na") return "#eaeef2";
  return "#ffebe9";
}

// Splits "TP=8 x EP=8 (replicate-kv)" into "TP=8 x EP=8" and "(replicate-kv)".
std::pair<std::string, std::string> two_lines(const std::string& name) {
  auto p = name.find(" (");
  if (p == std::string::npos) return {name, ""};
  return {name.substr(0, p), name.substr(p + 1)};
}

// A chart legend laid out left to right, wrapping to a new row before `right`.
struct Legend {
  std::ostringstream& os;
  double left, right, x, y;
  void add(const std::string& kind, const std::string& color, const std::string& label);
};

// One legend entry: a swatch (rect, line or marker) and its label.
void legend_item(std::ostringstream& os, double x, double y, const std::string& kind, const std::string& color,
                   const std::string& label) {
  if (kind == "rect") os << svg::rect(x, y - 9, 12, 12, color, "rx=\"2\"");
  else if (kind == "dash") os << svg::line(x, y - 3, x + 16, y - 3, color, 2, "stroke-dasharray=\"5 3\"");
  else if (kind == "tick") os << svg::line(x, y - 3, x + 14, y - 3, color, 2.5);
  else if (kind == "outline")
    os << svg::rect(x + 0.75, y - 8.25, 10.5, 10.5, "#ffebe9",
                   "stroke=\"" + color + "\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\"");
  else if (kind == "diamond")
    os << "<path d=\"M" << num(x + 6) << " " << num(y - 9) << " l6 6 l-6 6 l-6 -6 z\" fill=\"" << color << "\"/>";
  const double w = kind == "dash" ? 16 : 14;
  os << svg::text(x + w + 5, y + 1, label, "class=\"lg\"");
}

// Width estimate of a legend entry: swatch, gap and ~6.6 px per character of 12 px text.
double legend_width(const std::string& kind, const std::string& label) {
  size_t chars = 0;
  for (unsigned char ch : label) chars += (ch & 0xC0) != 0x80;  // count UTF-8 code points
  return (kind == "dash" ? 16 : 14) + 5 + 6.6 * double(chars) + 18;
}

void Legend::add(const std::string& kind, const std::string& color, const std::string& label) {
  if (x > left && x + legend_width(kind, label) > right) {
    x = left;
    y += 18;
  }
  legend_item(os, x, y, kind, color, label);
  x += legend_width(kind, label);
}

std::string gpus_text(int64_t g) { return std::to_string(g) + (g == 1 ? " GPU" : " GPUs"); }

std::vector<const StrategyResult*> applicable(const StrategyReport& r, int64_t g) {
  std::vector<const StrategyResult*> out;
  for (const auto* x : results_for(r, g))
    if (x->strategy.applicable) out.push_back(x);
  return out;
}

}  // namespace

// Memory per rank: one group of bars per strategy, one bar per GPU (weights + activations
// stacked), a tick at each GPU's loading peak, the GPU limit as a dashed line. Bars above the
// axis are cut at the top and labelled with their value.
std::string memory_chart_svg(const StrategyReport& r, int64_t g) {
  const auto rs = applicable(r, g);
  if (rs.empty()) return "";
  const double W = 1120, H = 400, x0 = 70, x1 = W - 16, y0 = 52, y1 = H - 92;  // plot box
  const double GiB = double(int64_t(1) << 30);
  const double limit = r.options.gpu_mem_gib;
  bool any_measured = false;
  double vmax = 0;
  for (const auto* x : rs) {
    for (const auto& m : x->memory.per_rank) {
      const int64_t load = x->strategy.plan.shard_only_loading ? m.load_peak_shard_bytes : m.load_peak_full_bytes;
      vmax = std::max({vmax, double(m.weight_bytes + m.activation_bytes) / GiB, double(load) / GiB});
    }
    for (int64_t b : x->memory.measured_loading_per_rank) {
      vmax = std::max(vmax, double(b) / GiB);
      any_measured = true;
    }
  }
  // Scale: show the limit with some headroom; values far above it are cut (labelled).
  const bool limit_on_scale = limit > 0 && vmax >= 0.3 * limit;
  double top = limit_on_scale ? std::max(limit * 1.15, std::min(vmax * 1.05, limit * 1.6)) : vmax * 1.15;
  if (top <= 0) top = 1;
  const double step = nice_step(top, 7);
  top = std::ceil(top / step - 1e-9) * step;
  auto Y = [&](double gib) { return y1 - (std::min(gib, top) / top) * (y1 - y0); };

  std::ostringstream os;
  os << "<svg class=\"chart\" viewBox=\"0 0 " << W << " " << H << "\" width=\"" << W << "\" height=\"" << H
     << "\" role=\"img\" aria-label=\"Memory per GPU on " << gpus_text(g) << "\">";
  // Grid and y axis.
  for (double v = 0; v <= top + 1e-9; v += step) {
    os << svg::line(x0, Y(v), x1, Y(v), kColor.grid, 1);
    os << svg::text(x0 - 8, Y(v) + 4, tick_label(v, step), "class=\"ax\" text-anchor=\"end\"");
  }
  os << svg::line(x0, y0, x0, y1, kColor.muted, 1) << svg::line(x0, y1, x1, y1, kColor.muted, 1);
  os << svg::text(18, (y0 + y1) / 2, "GiB per GPU (predicted ᵖ)",
                 "class=\"ax\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + num((y0 + y1) / 2) + ")\"");
  // Legend.
  Legend lg{os, x0, x1, x0, 16};
  lg.add("rect", kColor.weights, "weights");
  lg.add("rect", kColor.acts, "activations (batch x seq)");
  lg.add("rect", kColor.over_w, "above the GPU limit");
  lg.add("rect", kColor.fail_w, "layout fails before running");
  lg.add("outline", kColor.over_w, "peak while loading (when higher)");
  if (any_measured) lg.add("diamond", kColor.measured, "measured loading peak ᵐ");
  if (limit > 0)
    lg.add("dash", kColor.limit,
           limit_on_scale ? "GPU limit " + format_gib_limit(limit) : "GPU limit " + format_gib_limit(limit) + " (off scale)");

  const double gw = (x1 - x0) / double(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    const StrategyResult& x = *rs[i];
    const auto& ranks = x.memory.per_rank;
    const double gx = x0 + gw * double(i);
    const size_t n = std::max<size_t>(1, ranks.size());
    const double bw = std::min(24.0, gw * 0.8 / double(n));
    const double bx0 = gx + (gw - bw * double(n)) / 2;
    const std::string cls = outcome_class(x);
    const bool fails = x.outcome == Outcome::Fails || x.outcome == Outcome::SilentWrong;
    double clipped = 0;
    for (size_t k = 0; k < ranks.size(); ++k) {
      const RankMemory& m = ranks[k];
      const double w = double(m.weight_bytes) / GiB, a = double(m.activation_bytes) / GiB;
      const double load =
          double(x.strategy.plan.shard_only_loading ? m.load_peak_shard_bytes : m.load_peak_full_bytes) / GiB;
      const bool over = limit > 0 && (w + a > limit);
      const double bx = bx0 + bw * double(k) + 1, bwid = bw - 2;
      os << "<g><title>" << esc(x.strategy.name + ", rank " + std::to_string(m.rank) + " (stage " +
                                std::to_string(m.stage) + ", " + std::to_string(m.layers) + " layers): weights " +
                                format_gib1(m.weight_bytes) + ", activations " + format_gib1(m.activation_bytes) +
                                ", loading peak " + format_gib1(int64_t(load * GiB)))
         << "</title>";
      // A loading peak above the running need is drawn as a dashed outline behind the bar.
      if (load > (w + a) * 1.005) {
        const bool load_over = limit > 0 && load > limit;
        os << svg::rect(bx + 0.75, Y(load) + 0.75, bwid - 1.5, y1 - Y(load) - 0.75, load_over ? "#ffebe9" : "#f6f8fa",
                       std::string("stroke=\"") + (load_over ? kColor.over_w : kColor.muted) +
                           "\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"");
      }
      os << svg::rect(bx, Y(w), bwid, y1 - Y(w), fails ? kColor.fail_w : (over ? kColor.over_w : kColor.weights));
      os << svg::rect(bx, Y(w + a), bwid, Y(w) - Y(w + a), fails ? kColor.fail_a : (over ? kColor.over_a : kColor.acts));
      if (k < x.memory.measured_loading_per_rank.size()) {
        const double mv = double(x.memory.measured_loading_per_rank[k]) / GiB;
        os << "<path d=\"M" << num(bx + bwid / 2) << " " << num(Y(mv) - 6) << " l6 6 l-6 6 l-6 -6 z\" fill=\""
           << kColor.measured << "\"/>";
      }
      os << "</g>";
      clipped = std::max({clipped, w + a > top ? w + a : 0.0, load > top ? load : 0.0});
    }
    if (clipped > 0)
      os << svg::text(gx + gw / 2, y0 - 6, "▲ " + format_gib1(int64_t(clipped * GiB)),
                     "class=\"val\" text-anchor=\"middle\" fill=\"" + std::string(kColor.over_w) + "\"");
    // Labels: name on two lines, then the outcome pill.
    const auto [l1, l2] = two_lines(x.strategy.name);
    os << svg::text(gx + gw / 2, y1 + 18, l1, "class=\"xl\" text-anchor=\"middle\"");
    if (!l2.empty()) os << svg::text(gx + gw / 2, y1 + 33, l2, "class=\"xs\" text-anchor=\"middle\"");
    const std::string lab = outcome_label(x);
    const double pw = 7.0 * double(lab.size()) + 14;
    os << svg::rect(gx + gw / 2 - pw / 2, y1 + 42, pw, 18, class_bg(cls), "rx=\"9\"");
    os << svg::text(gx + gw / 2, y1 + 55, lab,
                   "class=\"pill\" text-anchor=\"middle\" fill=\"" + std::string(class_fill(cls)) + "\"");
    os << svg::text(gx + gw / 2, y1 + 76, format_gib1(x.memory.per_gpu_bytes()) + " max",
                   "class=\"xs\" text-anchor=\"middle\"");
  }
  // The limit line last, on top of the bars.
  if (limit_on_scale) {
    os << svg::line(x0, Y(limit), x1, Y(limit), kColor.limit, 2, "stroke-dasharray=\"6 4\"");
    os << svg::text(x1 - 4, Y(limit) - 5, format_gib_limit(limit) + " per GPU",
                   "class=\"val\" text-anchor=\"end\" fill=\"" + std::string(kColor.limit) + "\"");
  }
  os << "</svg>";
  return os.str();
}

// Communication per token: one stacked horizontal bar per strategy (TP all-reduce, EP dispatch +
// combine, PP transfers, logits all-gather), the total and the collectives per forward at the end.
std::string comm_chart_svg(const StrategyReport& r, int64_t g) {
  const auto rs = applicable(r, g);
  if (rs.empty()) return "";
  double vmax = 0;
  for (const auto* x : rs) vmax = std::max(vmax, x->comm.total_bytes());
  const bool mib = vmax >= 1024.0 * 1024.0;
  const double unit = mib ? 1024.0 * 1024.0 : 1024.0;
  const std::string uname = mib ? "MiB" : "KiB";
  const double row = 30, W = 1120, x0 = 230, x1 = W - 210, y0 = 44;
  const double H = y0 + row * double(rs.size()) + 48;
  const double y1 = y0 + row * double(rs.size());
  double top = std::max(vmax / unit, 1e-9) * 1.02;
  const double step = nice_step(top, 6);
  top = std::ceil(top / step - 1e-9) * step;
  auto X = [&](double bytes) { return x0 + (bytes / unit) / top * (x1 - x0); };

  std::ostringstream os;
  os << "<svg class=\"chart\" viewBox=\"0 0 " << W << " " << num(H) << "\" width=\"" << W << "\" height=\"" << num(H)
     << "\" role=\"img\" aria-label=\"Communication per token on " << gpus_text(g) << "\">";
  Legend lg{os, x0, W - 16, x0, 20};
  lg.add("rect", kColor.tp, "TP all-reduce");
  lg.add("rect", kColor.ep, "EP dispatch + combine");
  lg.add("rect", kColor.pp, "PP stage transfer");
  lg.add("rect", kColor.logits, "logits all-gather");
  for (double v = 0; v <= top + 1e-9; v += step) {
    const double x = x0 + v / top * (x1 - x0);
    os << svg::line(x, y0 - 4, x, y1, kColor.grid, 1);
    os << svg::text(x, y1 + 16, tick_label(v, step), "class=\"ax\" text-anchor=\"middle\"");
  }
  os << svg::text((x0 + x1) / 2, y1 + 36, uname + " sent per token (predicted ᵖ)", "class=\"ax\" text-anchor=\"middle\"");
  for (size_t i = 0; i < rs.size(); ++i) {
    const StrategyResult& x = *rs[i];
    const double y = y0 + row * double(i) + 6, h = row - 12;
    const std::string cls = outcome_class(x);
    os << "<circle cx=\"12\" cy=\"" << num(y + h / 2) << "\" r=\"5\" fill=\"" << class_fill(cls) << "\"/>";
    os << svg::text(24, y + h / 2 + 4, x.strategy.name, "class=\"xl\"");
    const CommEstimate& c = x.comm;
    double at = 0;
    os << "<g><title>" << esc(x.strategy.name + ": TP " + format_bytes(c.tp_bytes) + ", EP " + format_bytes(c.ep_bytes) +
                              ", PP " + format_bytes(c.pp_bytes) + ", logits " + format_bytes(c.logits_bytes) +
                              " per token")
       << "</title>";
    for (auto [bytes, color] : {std::pair<double, const char*>{c.tp_bytes, kColor.tp}, {c.ep_bytes, kColor.ep},
                                {c.pp_bytes, kColor.pp}, {c.logits_bytes, kColor.logits}}) {
      if (bytes <= 0) continue;
      os << svg::rect(X(at), y, X(at + bytes) - X(at), h, color);
      at += bytes;
    }
    os << "</g>";
    os << svg::text(X(at) + 8, y + h / 2 + 4,
                   format_bytes(c.total_bytes()) + " · " + std::to_string(c.collectives()) + " collectives/forward",
                   "class=\"val\"");
  }
  os << svg::line(x0, y0 - 4, x0, y1, kColor.muted, 1) << "</svg>";
  return os.str();
}

// Measured tokens per second of every strategy a harness run covered ("" when none).
std::string throughput_chart_svg(const StrategyReport& r) {
  std::vector<const StrategyResult*> rs;
  for (const auto& x : r.results)
    if (x.tokens_per_s) rs.push_back(&x);
  if (rs.empty()) return "";
  double vmax = 0;
  for (const auto* x : rs) vmax = std::max(vmax, *x->tokens_per_s);
  const double row = 30, W = 1120, x0 = 300, x1 = W - 160, y0 = 16;
  const double y1 = y0 + row * double(rs.size()), H = y1 + 48;
  double top = std::max(vmax, 1e-9) * 1.02;
  const double step = nice_step(top, 6);
  top = std::ceil(top / step - 1e-9) * step;
  auto X = [&](double v) { return x0 + v / top * (x1 - x0); };
  std::ostringstream os;
  os << "<svg class=\"chart\" viewBox=\"0 0 " << W << " " << num(H) << "\" width=\"" << W << "\" height=\"" << num(H)
     << "\" role=\"img\" aria-label=\"Measured throughput\">";
  for (double v = 0; v <= top + 1e-9; v += step) {
    os << svg::line(X(v), y0 - 4, X(v), y1, kColor.grid, 1);
    os << svg::text(X(v), y1 + 16, tick_label(v, step), "class=\"ax\" text-anchor=\"middle\"");
  }
  os << svg::text((x0 + x1) / 2, y1 + 36, "tokens per second (measured ᵐ)", "class=\"ax\" text-anchor=\"middle\"");
  for (size_t i = 0; i < rs.size(); ++i) {
    const StrategyResult& x = *rs[i];
    const double y = y0 + row * double(i) + 6, h = row - 12;
    os << svg::text(12, y + h / 2 + 4, gpus_text(x.strategy.gpus) + " · " + x.strategy.name, "class=\"xl\"");
    os << svg::rect(x0, y, X(*x.tokens_per_s) - x0, h, class_fill(outcome_class(x)));
    char t[64];
    std::snprintf(t, sizeof t, "%.0f tok/s", *x.tokens_per_s);
    os << svg::text(X(*x.tokens_per_s) + 8, y + h / 2 + 4, t, "class=\"val\"");
  }
  os << svg::line(x0, y0 - 4, x0, y1, kColor.muted, 1) << "</svg>";
  return os.str();
}

namespace {

const char* kCss = R"CSS(
:root{--ink:#1f2328;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa;--ok:#1a7f37;--okbg:#dafbe1;--slow:#9a6700;
--slowbg:#fff8c5;--fail:#cf222e;--failbg:#ffebe9;--na:#57606a;--nabg:#eaeef2;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;background:#eef1f4;color:var(--ink);font:14px/1.5 -apple-system,"Segoe UI","Noto Sans",Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 30px 40px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 2px;font-weight:650}
h1 .cfg{color:var(--accent)}
h2{font-size:18px;margin:30px 0 10px;padding-bottom:5px;border-bottom:1px solid var(--line);font-weight:650}
h3{font-size:15px;margin:18px 0 8px}
p.meta{margin:4px 0;color:var(--muted)}
p.meta b{color:var(--ink)}
.legend-src{font-size:12px;color:var(--muted)}
code{font:12px/1.4 ui-monospace,SFMono-Regular,"DejaVu Sans Mono",Menlo,Consolas,monospace;background:var(--soft);
border:1px solid #e4e8ec;border-radius:4px;padding:0 4px;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(265px,1fr));gap:12px}
.card{border:1px solid var(--line);border-left-width:6px;border-radius:8px;padding:10px 12px;background:#fff}
.card.ok{border-left-color:var(--ok)}.card.slow{border-left-color:#d4a72c}.card.fail{border-left-color:var(--fail)}
.card.na{border-left-color:#afb8c1}
.card .name{font-weight:650;font-size:14.5px}
.card .hd{display:flex;justify-content:space-between;align-items:baseline;gap:8px}
.card .origin{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;white-space:nowrap}
.card .verdict{margin:6px 0;font-size:13px}
.card .figs{font-size:12px;color:var(--muted)}
.card .confirm{font-size:12px;margin-top:2px}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;white-space:nowrap}
.pill.ok{background:var(--okbg);color:var(--ok)}.pill.slow{background:var(--slowbg);color:var(--slow)}
.pill.fail{background:var(--failbg);color:var(--fail)}.pill.na{background:var(--nabg);color:var(--na)}
.recs{margin:10px 0 14px}
.recommend{margin:6px 0;padding:10px 14px;border:1px solid #54aeff;background:#ddf4ff;border-radius:8px}
.recommend.none{border-color:#ff8182;background:var(--failbg)}
table{border-collapse:collapse;width:100%;font-size:12.5px}
.tw{overflow-x:auto;max-width:100%}
td code{white-space:nowrap;font-size:11px}
td.s{font-weight:600}
th,td{padding:6px 7px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.n{text-align:right;white-space:nowrap}
tr.grp td{background:#eef4fc;font-weight:650;border-top:2px solid var(--line)}
.bar{display:inline-block;width:40px;height:8px;border-radius:4px;background:var(--nabg);vertical-align:middle;margin-right:6px}
.bar i{display:block;height:8px;border-radius:4px;background:var(--accent)}
figure{margin:6px 0 0}figcaption{font-size:12px;color:var(--muted);margin-top:2px}
svg.chart{max-width:100%;height:auto;font-family:-apple-system,"Segoe UI","Noto Sans",Helvetica,Arial,sans-serif}
svg .ax{font-size:11px;fill:#57606a}svg .lg{font-size:12px;fill:#1f2328}svg .xl{font-size:12px;fill:#1f2328;font-weight:600}
svg .xs{font-size:11px;fill:#57606a}svg .val{font-size:11.5px;fill:#1f2328}svg .pill{font-size:11px;font-weight:650}
.note{padding:10px 14px;border:1px dashed var(--line);border-radius:8px;color:var(--muted);background:var(--soft)}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
ul.fails li{margin-bottom:8px}
footer{margin-top:28px;font-size:12px;color:var(--muted)}
)CSS";

// The users' text first (the checker's, at the report's batch x seq); a run that raised exactly
// the predicted text for its own shape confirms it on a line of its own.
std::string verdict_html(const StrategyResult& x) {
  if (const auto cf = confirmed_failure(x)) return "fails ᵐ: <code>" + esc(cf->users_text) + "</code> ᵖ";
  if (x.outcome == Outcome::Fails && x.outcome_source == Source::Predicted && x.first_error &&
      !x.first_error->error_text.empty())
    return "fails: <code>" + esc(x.first_error->error_text) + "</code>";
  return esc(x.verdict);
}

std::string pill(const StrategyResult& x) {
  const std::string cls = outcome_class(x);
  const std::string mark = x.outcome == Outcome::NotApplicable ? "" : source_mark(x.outcome_source);
  return "<span class=\"pill " + cls + "\">" + esc(outcome_label(x)) + mark + "</span>";
}

std::string busy_bar(double f) {
  char w[32];
  std::snprintf(w, sizeof w, "%.1f%%", 100.0 * f);
  return "<span class=\"bar\"><i style=\"width:" + std::string(w) + "\"></i></span>";
}

bool tiny(const StrategyResult& x) { return x.run && !x.run->scale.empty() && x.run->scale != "full widths"; }

std::string measured_html(const StrategyResult& x) {
  return measured_line(x, [](const std::string& t) { return "<code>" + esc(t) + "</code>"; },
                       [](const std::string& t) { return esc(t); });
}

void cards(std::ostringstream& os, const StrategyReport& r, int64_t g) {
  os << "<div class=\"cards\">";
  for (const StrategyResult* x : results_for(r, g)) {
    const std::string cls = outcome_class(*x);
    os << "<div class=\"card " << cls << "\"><div class=\"hd\"><span class=\"name\">" << esc(x->strategy.name)
       << "</span><span class=\"origin\">" << origin_name(x->strategy.origin) << "</span></div>" << pill(*x)
       << "<div class=\"verdict\">" << verdict_html(*x);
    if (x->first_error && x->outcome != Outcome::Works &&
        (x->outcome_source == Source::Predicted || confirmed_failure(*x)))
      os << " <span class=\"figs\">(<code>" << esc(x->first_error->id) << "</code>)</span>";
    if (const auto cf = confirmed_failure(*x))
      os << "<div class=\"confirm\">confirmed on " << esc(cf->where) << ": <code>" << esc(cf->run_text) << "</code> ᵐ</div>";
    os << "</div>";
    if (x->run) os << "<div class=\"figs\">" << measured_html(*x) << "</div>";
    const std::string not_run = not_run_line(r, *x);
    if (!not_run.empty()) os << "<div class=\"figs\">" << esc(not_run) << "</div>";
    if (x->strategy.applicable) {
      os << "<div class=\"figs\">" << format_gib1(x->memory.per_gpu_bytes()) << "/GPU ᵖ · "
         << format_bytes(x->comm.total_bytes()) << "/token ᵖ · " << format_percent(x->busy()) << " busy ᵖ";
      if (x->tokens_per_s) {
        char t[48];
        std::snprintf(t, sizeof t, " · %.0f tok/s ᵐ", *x->tokens_per_s);
        os << t << (tiny(*x) ? " (tiny CPU model)" : "");
      }
      os << "</div>";
    }
    os << "</div>";
  }
  os << "</div>";
}

// The answer first: one box per GPU count, the largest first.
void recommendations(std::ostringstream& os, const StrategyReport& r) {
  if (r.summaries.empty()) return;
  os << "<section class=\"recs\" aria-label=\"Recommendation\">";
  for (const GpuSummary* s : summaries_largest_first(r)) {
    if (s->recommended.empty())
      os << "<div class=\"recommend none\"><b>Nothing works on " << gpus_text(s->gpus) << "</b>: " << esc(s->reason)
         << ".</div>";
    else
      os << "<div class=\"recommend\"><b>Recommended on " << gpus_text(s->gpus) << ": " << esc(s->recommended_name)
         << "</b> — " << esc(s->reason) << ".</div>";
  }
  os << "</section>";
}

void table(std::ostringstream& os, const StrategyReport& r) {
  os << "<div class=\"tw\"><table><thead><tr><th>strategy</th><th>outcome</th><th>first failing invariant</th>"
        "<th>memory / GPU</th><th>loading peak</th><th>comm / token</th><th>GPU busy</th><th>correctness</th>"
        "<th>tokens/s</th></tr></thead><tbody>";
  for (int64_t g : r.options.gpus) {
    os << "<tr class=\"grp\"><td colspan=\"9\">" << gpus_text(g) << "</td></tr>";
    for (const StrategyResult* x : results_for(r, g)) {
      const Strategy& st = x->strategy;
      if (!st.applicable) {
        os << "<tr><td class=\"s\">" << esc(st.name) << "</td><td>" << pill(*x) << "</td><td colspan=\"7\">"
           << esc(st.not_applicable) << "</td></tr>";
        continue;
      }
      // The exact layout is the name's tooltip (and in the JSON / Markdown).
      os << "<tr><td class=\"s\" title=\"" << esc(st.plan.describe()) << "\">" << esc(st.name) << "</td><td>"
         << pill(*x) << "</td><td>";
      if (x->first_error) os << "<code>" << esc(x->first_error->id) << "</code>";
      else os << "—";
      os << "</td><td class=\"n\">" << format_gib1(x->memory.per_gpu_bytes()) << " ᵖ</td><td class=\"n\">";
      if (x->memory.measured_loading_bytes) os << format_gib1(*x->memory.measured_loading_bytes) << " ᵐ";
      else os << format_gib1(x->memory.loading_bytes) << " ᵖ";
      os << "</td><td class=\"n\">" << format_bytes(x->comm.total_bytes()) << " ᵖ</td><td class=\"n\">"
         << busy_bar(x->busy()) << format_percent(x->busy()) << " ᵖ</td><td>"
         << (x->run ? esc(x->correctness) + " ᵐ" : std::string("not run"));
      if (x->max_nmse) {
        char t[48];
        std::snprintf(t, sizeof t, " (NMSE %.1e)", *x->max_nmse);
        os << t;
      } else if (x->run && !x->predicted_run_error.empty()) {
        os << (x->error_text_matches ? " (text = predicted)" : " (text ≠ predicted)");
      }
      os << "</td><td class=\"n\">";
      if (x->tokens_per_s) {
        char t[32];
        std::snprintf(t, sizeof t, "%.0f ᵐ", *x->tokens_per_s);
        os << t << (tiny(*x) ? " (tiny)" : "");
      } else {
        os << "—";
      }
      os << "</td></tr>";
    }
  }
  os << "</tbody></table></div>";
}

void failures(std::ostringstream& os, const StrategyReport& r) {
  std::ostringstream li;
  for (const auto& x : r.results) {
    if (!x.first_error) continue;
    const Finding& f = *x.first_error;
    li << "<li><b>" << gpus_text(x.strategy.gpus) << ", " << esc(x.strategy.name) << "</b> — <code>" << esc(f.id)
       << "</code>";
    if (!f.module.empty()) li << " in <code>" << esc(f.module) << "</code>";
    li << "<br/>" << esc(f.message);
    if (!f.error_text.empty()) li << "<br/>LibTorch raises: <code>" << esc(f.error_text) << "</code>";
    if (!f.fix.empty()) li << "<br/>Fix: " << esc(f.fix);
    li << "</li>";
  }
  if (!li.str().empty()) os << "<h2>First failing invariants</h2><ul class=\"fails\">" << li.str() << "</ul>";
}

}  // namespace

std::string render_report_html(const StrategyReport& r) {
  const ModelConfig& c = r.config;
  const std::string name = c.name.empty() ? c.source : c.name;
  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
     << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>"
     << "<title>shardcheck strategy report: " << esc(name) << "</title><style>" << kCss << "</style></head><body><main>";
  const std::string params = format_count(c.total_params());
  os << "<h1>Strategy report: <span class=\"cfg\">" << esc(name) << "</span></h1>";
  recommendations(os, r);
  os << "<p class=\"meta\"><b>" << esc(c.model_type) << "</b> · " << c.num_hidden_layers << " layers · hidden "
     << c.hidden_size << " · " << c.num_attention_heads << " query / " << c.num_key_value_heads << " KV heads × "
     << c.head_dim;
  if (c.is_moe())
    os << " · " << c.num_experts << " experts (top-" << c.num_experts_per_tok << ", " << c.moe_intermediate_size
       << " wide)";
  os << " · vocab " << c.vocab_size << " · " << params << " parameters · " << dtype_torch_name(c.dtype);
  if (!c.rope_scaling_type.empty()) os << " · rope scaling " << esc(c.rope_scaling_summary()) << " (no shape change)";
  os << "</p>";
  os << "<p class=\"meta\">Assumptions: one forward of <b>batch " << r.options.batch << " × seq " << r.options.seq
     << "</b> in " << dtype_torch_name(r.dtype) << " · <b>" << format_gib_limit(r.options.gpu_mem_gib)
     << " per GPU</b> (<code>--gpu-mem</code>, default 141 GiB = H200) · " << r.options.micro_batches
     << (r.options.micro_batches == 1 ? " micro-batch" : " micro-batches")
     << " for TP × PP; device_map placement always runs one.</p>";
  os << "<p class=\"legend-src\">ᵖ predicted by the static checker, the memory and communication models · "
        "ᵐ measured by a harness run</p>";
  if (r.options.launched) {
    const RunLaunch& l = *r.options.launched;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.0f s", l.seconds);
    os << "<p class=\"meta\">Harness runs (<code>--run</code>, " << secs << "): every layout the checker predicts runs or "
       << "raises a shape error was run and compared with the single-device reference — " << esc(l.scale) << ", batch "
       << l.batch << " × seq " << l.seq << ", " << esc(l.dtype) << ". Head counts, head_dim, KV heads, experts and top-k "
       << "are the config's, so outcomes and error texts are the real ones"
       << (l.device == "cpu" ? "; tokens/s and loading memory are those of the tiny CPU model." : ".") << "</p>";
  }

  std::vector<int64_t> counts = r.options.gpus;
  std::sort(counts.begin(), counts.end(), std::greater<int64_t>());
  if (!counts.empty()) {
    const int64_t g = counts.front();
    os << "<h2>On " << gpus_text(g) << "</h2>";
    cards(os, r, g);
    const std::string mem = memory_chart_svg(r, g);
    if (!mem.empty())
      os << "<h3>Memory per GPU, " << gpus_text(g) << "</h3><figure>" << mem
         << "<figcaption>One bar per GPU (rank): weights and activations of one forward stacked; a dashed outline "
            "marks the predicted peak while loading where it exceeds the running need (full-tensor reads). Bars above the axis are cut and labelled.</figcaption></figure>";
    const std::string comm = comm_chart_svg(r, g);
    if (!comm.empty())
      os << "<h3>Communication per token, " << gpus_text(g) << "</h3><figure>" << comm
         << "<figcaption>Bytes each GPU sends per token of the batch in one forward pass (ring collectives; see the "
            "formulas below).</figcaption></figure>";
  }
  os << "<h3>Throughput</h3>";
  const std::string tput = throughput_chart_svg(r);
  if (tput.empty())
    os << "<div class=\"note\">No measured runs attached: tokens per second appear here once harness results are "
          "launched with <code>--run</code> or given with <code>--runs FILE</code>. Throughput is never predicted.</div>";
  else
    os << "<figure>" << tput << "<figcaption>Measured by harness runs"
       << (r.options.launched && r.options.launched->device == "cpu"
               ? " of the reduced-width model on CPU threads (report --run): compares layouts with each other, not GPU speed"
               : "")
       << ".</figcaption></figure>";

  os << "<h2>All strategies</h2>";
  table(os, r);
  os << "<p class=\"legend-src\">Memory / GPU is the most loaded GPU: max(weights + activations, peak while loading). "
        "GPU busy is 1 − pipeline bubble, bubble = (pp−1)/(m+pp−1).</p>";

  for (size_t i = 1; i < counts.size(); ++i) {
    const std::string mem = memory_chart_svg(r, counts[i]);
    if (mem.empty()) continue;
    os << "<details><summary>Memory per GPU and communication, " << gpus_text(counts[i]) << "</summary><figure>" << mem
       << "</figure><figure>" << comm_chart_svg(r, counts[i]) << "</figure></details>";
  }

  failures(os, r);
  std::ostringstream notes;
  for (const auto& x : r.results)
    if (!x.note.empty())
      notes << "<li><b>" << gpus_text(x.strategy.gpus) << ", " << esc(x.strategy.name) << "</b>: " << esc(x.note) << "</li>";
  for (const auto& x : r.results)
    if (x.run)
      notes << "<li><b>" << gpus_text(x.strategy.gpus) << ", " << esc(x.strategy.name) << "</b> harness run ("
            << esc(x.run->backend) << " on " << esc(x.run->device) << ", batch " << x.run->plan.batch << " × seq "
            << x.run->plan.seq << "): " << esc(x.run->summary)
            << (tiny(x) ? "; model: " + esc(x.run->scale) : std::string()) << "</li>";
  for (const auto& run : r.unmatched_runs)
    notes << "<li>A harness run of <code>" << esc(run.plan.describe()) << "</code> matches no strategy of this report.</li>";
  if (!notes.str().empty()) os << "<h2>Notes</h2><ul>" << notes.str() << "</ul>";
  if (r.checkpoint) {
    const CheckpointSummary& ck = *r.checkpoint;
    os << "<h2>Checkpoint</h2><p><code>" << esc(ck.path) << "</code>: " << ck.tensors << " tensors, "
       << format_bytes(double(ck.bytes)) << ", " << esc(ck.dtype) << " — "
       << (ck.consistent() ? "matches the config." : "does <b>not</b> match the config:") << "</p>";
    if (!ck.problems.empty()) {
      os << "<ul>";
      for (const auto& p : ck.problems) os << "<li>" << esc(p) << "</li>";
      os << "</ul>";
    }
  }
  os << "<h2>How the figures are computed</h2><ul>"
     << "<li><b>Outcome, first failing invariant</b> ᵖ: the static checker on the layout, with the exact LibTorch "
        "error text.</li>"
     << "<li><b>Memory per GPU</b> ᵖ: weights from the sharding table's slices plus activations of one forward; "
        "<b>loading peak</b> ᵖ: shard-only reads hold the GPU's slices plus one read buffer, full-tensor reads hold the "
        "stage's unsharded tensors (replaced by the measured peak ᵐ when a run has it).</li>"
     << "<li><b>Communication per token</b> ᵖ (a = dtype bytes, H = hidden): TP all-reduce 2(n−1)/n·H·a per layer for "
        "attention and MLP (experts over expert-TP); EP dispatch + combine 2·top_k·H·a·(ep−1)/ep per sparse layer; PP "
        "H·a per stage boundary; logits all-gather (tp−1)/tp·vocab·a.</li>"
     << "<li><b>GPU busy</b> ᵖ: 1 − bubble with bubble = (pp−1)/(m+pp−1) for m micro-batches.</li>"
     << "<li><b>Correctness, tokens/s</b> ᵐ: harness runs only (<code>--run</code> launches them, <code>--runs FILE</code> "
        "attaches <code>shardcheck run --json</code> output); a failing run's texts are held to the checker's "
        "prediction for the run's own batch × seq.</li></ul>";
  os << "<footer>Generated by shardcheck 0.1.0 from <code>" << esc(c.source.empty() ? name : c.source)
     << "</code>. Self-contained page: no scripts, no external resources.</footer>";
  os << "</main></body></html>\n";
  return os.str();
}

}  // namespace sc
