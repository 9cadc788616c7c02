#include "families/family.h"
#include "checks/fuzz/fuzz.h"

#include <chrono>
#include <cstdio>
#include <sstream>
#include <sys/stat.h>

#include "checks/checker.h"
#include "checks/findings.h"
#include "models/atomic_file.h"
#include "models/errors.h"
#include "models/fault_hooks.h"

namespace sc::fuzz {

std::string FuzzCase::describe() const {
  const ModelConfig& c = config;
  std::ostringstream os;
  os << c.model_type << " heads " << c.num_attention_heads << "/" << c.num_key_value_heads << " x " << c.head_dim
     << " hidden " << c.hidden_size << " layers " << c.num_hidden_layers;
  if (c.is_moe()) os << " experts " << c.num_experts << " top-" << c.num_experts_per_tok << " moe " << c.moe_intermediate_size;
  os << " | " << plan.describe() << " batch " << plan.batch << " seq " << plan.seq;
  if (plan.micro_batches > 1) os << " micro-batches " << plan.micro_batches;
  os << " " << dtype_torch_name(plan.dtype);
  return os.str();
}

void to_json(nlohmann::json& j, const FuzzCase& c) {
  j = nlohmann::json{{"config", c.config.to_json()}, {"plan", c.plan}, {"describe", c.describe()}};
}

int64_t Chooser::pick(int64_t n) {
  if (n <= 1) {
    choices_.push_back(0);
    return 0;
  }
  uint64_t v;
  if (replay_) {
    const size_t i = choices_.size();
    v = i < replay_->size() ? std::min<uint64_t>((*replay_)[i], uint64_t(n - 1)) : 0;
  } else {
    // splitmix64, mapped to [0, n) by a 128-bit multiply (no modulo bias worth naming at n < 2^32).
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    v = uint64_t((unsigned __int128)z * uint64_t(n) >> 64);
  }
  choices_.push_back(uint32_t(v));
  return int64_t(v);
}

std::vector<std::vector<uint32_t>> shrink_choices(const std::vector<uint32_t>& c, size_t position) {
  std::vector<std::vector<uint32_t>> out;
  const uint32_t v = c[position];
  auto with = [&](uint32_t x) {
    out.push_back(c);
    out.back()[position] = x;
  };
  if (v <= 64) {
    for (uint32_t x = 0; x < v; ++x) with(x);  // every smaller choice, simplest first
  } else {
    for (uint32_t d = v; d > 0; d /= 2) with(v - d);  // v - v, v - v/2, ..., v - 1
  }
  return out;
}

namespace {

FuzzCase build_case(Chooser& ch, const Limits& lim) {
  // Every choice is drawn, in this order, whatever the earlier ones were (so a choice keeps its
  // meaning while others shrink). Head geometry first: kv heads, group size, head_dim.
  const int64_t kv = ch.element<int64_t>({1, 2, 4, 3, 8, 6});
  const int64_t groups = ch.element<int64_t>({1, 2, 4, 3, 8});
  const int64_t hd = lim.tiny ? ch.element<int64_t>({4, 8, 16, 12}) : ch.element<int64_t>({64, 128, 96, 8, 16, 24, 40, 80, 256});
  const bool dense = ch.pick(2) == 1;
  const int64_t experts = ch.element<int64_t>({1, 2, 4, 8, 3, 5, 16});
  const int64_t topk = 1 + ch.pick(8);
  const int64_t layers = 1 + ch.pick(4);
  const int64_t sparse_step = 1 + ch.pick(2);
  const int64_t hidden_units = 1 + ch.pick(8);  // hidden / 8 (tiny) or / 64
  const int64_t unit = ch.element<int64_t>({8, 16, 24, 12, 32});  // moe / intermediate unit
  const int64_t maxr = lim.max_ranks;

  FuzzCase fc;
  ModelConfig& c = fc.config;
  ParallelPlan& p = fc.plan;
  c.name = "fuzz";
  c.model_type = dense ? "qwen3" : "qwen3_moe";
  c.num_key_value_heads = kv;
  c.num_attention_heads = kv * groups;
  c.head_dim = hd;
  c.hidden_size = hidden_units * (lim.tiny ? 8 : 64);
  c.num_hidden_layers = layers;
  c.vocab_size = lim.tiny ? 64 : 1024;
  c.intermediate_size = unit * 2;
  if (!dense) {
    c.num_experts = experts;
    c.num_experts_per_tok = std::min<int64_t>(topk, c.num_experts);
    c.moe_intermediate_size = unit;
    c.decoder_sparse_step = sparse_step;
    c.norm_topk_prob = topk % 2 == 0;
  }
  c.dtype = DType::F32;

  // Plan: tp (among the allowed values when the property restricts it), then ep, pp, style, shape.
  if (lim.tp_ok) {
    int64_t allowed[64];
    int64_t n = 0;
    for (int64_t t = 1; t <= maxr && n < 64; ++t)
      if (lim.tp_ok(c, t)) allowed[n++] = t;
    const int64_t i = ch.pick(std::max<int64_t>(n, 1));
    p.tp = n ? allowed[i] : 1;
  } else {
    p.tp = 1 + ch.pick(maxr);
  }
  const int64_t ep_choice = ch.pick(4);
  const int64_t pp = 1 + ch.pick(4);
  const bool replicate = ch.pick(2) == 1;
  p.batch = 1 + ch.pick(4);
  p.seq = 1 + ch.pick(6);
  // ep: 1, tp, a divisor of tp, or a multiple of tp (valid by construction).
  switch (ep_choice) {
    case 0: p.ep = 1; break;
    case 1: p.ep = p.tp; break;
    case 2: p.ep = p.tp % 2 == 0 ? p.tp / 2 : 1; break;
    default: p.ep = p.tp * 2 <= maxr ? p.tp * 2 : p.tp; break;
  }
  if (dense) p.ep = 1;
  p.pp = std::min<int64_t>(pp, lim.tiny ? c.num_hidden_layers : 8);
  while (p.world_size() > maxr && p.pp > 1) p.pp--;
  while (p.world_size() > maxr && p.ep > 1) p.ep /= 2;
  if (p.tp % p.ep != 0 && p.ep % p.tp != 0) p.ep = 1;
  p.style = replicate ? PlanStyle::ReplicateKv : PlanStyle::HfAuto;
  p.dtype = lim.tiny ? DType::F64 : DType::BF16;
  // Pipeline micro-batches (drawn last, so earlier choices keep their meaning): 1 .. batch, of
  // unequal sizes when they do not divide the batch.
  p.micro_batches = std::min<int64_t>(1 + ch.pick(3), p.batch);
  // The family (drawn last; 0, Qwen3, is the simplest): the other GQA families with a forward,
  // with the fields their spec sets (families/<name>/spec.cpp).
  switch (ch.pick(4)) {
    case 1:  // no q/k norm: Llama (dense), Mixtral (experts of intermediate_size, always renormalised)
      c.model_type = dense ? "llama" : "mixtral";
      c.qk_norm = false;
      if (!dense) {
        c.intermediate_size = c.moe_intermediate_size;
        c.norm_topk_prob = true;
        c.decoder_sparse_step = 1;
      }
      break;
    case 2:  // q/k/v biases: Qwen2, Qwen2-MoE (a gated shared expert, experts not TP-sharded by HF)
      c.model_type = dense ? "qwen2" : "qwen2_moe";
      c.qk_norm = false;
      c.attention_bias = true;
      if (!dense) {
        c.shared_expert_intermediate_size = unit + 8;
        c.shared_expert_gate = true;
      }
      break;
    case 3:  // every layer sliding with a window shorter than most sequences: Mistral, Mixtral
      c.model_type = dense ? "mistral" : "mixtral";
      c.qk_norm = false;
      c.sliding_window = 1 + p.seq / 2;
      c.layer_kinds.assign(size_t(c.num_hidden_layers), LayerKind::Sliding);
      if (!dense) {
        c.intermediate_size = c.moe_intermediate_size;
        c.norm_topk_prob = true;
        c.decoder_sparse_step = 1;
      }
      break;
    default: break;
  }
  c.family = c.model_type == "qwen3_moe" ? "qwen3" : c.model_type;
  return fc;
}

const std::vector<std::string>& absurd_keys() {
  static const std::vector<std::string> keys = {
      "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
      "moe_intermediate_size", "num_experts", "num_local_experts", "num_experts_per_tok", "num_hidden_layers",
      "vocab_size", "decoder_sparse_step", "max_position_embeddings", "rms_norm_eps", "rope_theta",
      "tie_word_embeddings", "norm_topk_prob", "mlp_only_layers", "torch_dtype", "dtype", "rope_parameters"};
  return keys;
}

// One value: a sane integer (-3 .. 299) or an absurd one. The three choices are always drawn.
struct AbsurdValue {
  int64_t kind, small, special;
  explicit AbsurdValue(Chooser& ch) : kind(ch.pick(2)), small(ch.pick(303)), special(ch.pick(11)) {}
  nlohmann::json make() const {
    using nlohmann::json;
    if (kind == 0) return json(small - 3);
    switch (special) {
      case 0: return json(0);
      case 1: return json(-1);
      case 2: return json(int64_t(1) << 40);
      case 3: return json(1e300);
      case 4: return json(2.5);
      case 5: return json("64");
      case 6: return json(nullptr);
      case 7: return json::array();
      case 8: return json::object();
      case 9: return json(uint64_t(18446744073709551615ull));
      default: return json(true);
    }
  }
};

}  // namespace

rc::Gen<FuzzCase> gen_case(const Limits& lim) {
  return gen_from_choices<FuzzCase>([lim](Chooser& ch) { return build_case(ch, lim); });
}

rc::Gen<nlohmann::json> gen_absurd_config() {
  using nlohmann::json;
  // Each key: missing, a sane value, or an absurd one (negative, zero, huge, float, string, null,
  // container). Shrinks toward the first model_type and toward missing keys.
  return gen_from_choices<json>([](Chooser& ch) {
    json j = json::object();
    const int64_t type = ch.pick(4);
    static const char* const types[] = {"qwen3_moe", "qwen3", "llama"};
    if (type < 3) j["model_type"] = types[type];
    for (const std::string& k : absurd_keys()) {
      const bool present = ch.pick(2) == 1;
      const AbsurdValue v(ch);
      if (present) j[k] = v.make();
    }
    return j;
  });
}

rc::Gen<ParallelPlan> gen_any_plan() {
  return gen_from_choices<ParallelPlan>([](Chooser& ch) {
    ParallelPlan p;
    p.tp = ch.pick(41) - 1;  // -1 .. 39
    p.ep = ch.pick(41) - 1;
    p.pp = ch.pick(13) - 1;  // -1 .. 11
    p.batch = ch.pick(300);
    p.seq = ch.pick(300);
    p.style = ch.pick(2) == 1 ? PlanStyle::ReplicateKv : PlanStyle::HfAuto;
    return p;
  });
}

CaseRecord& CaseRecord::operator=(const FuzzCase& c) {
  kind_ = Kind::Case;
  case_ = c;
  return *this;
}

CaseRecord& CaseRecord::operator=(nlohmann::json j) {
  kind_ = Kind::Json;
  json_ = std::move(j);
  return *this;
}

void CaseRecord::set_raw(nlohmann::json config, const ParallelPlan& plan) {
  kind_ = Kind::Raw;
  json_ = std::move(config);
  plan_ = plan;
}

nlohmann::json CaseRecord::to_json() const {
  switch (kind_) {
    case Kind::Case: return nlohmann::json(case_);
    case Kind::Json: return json_;
    case Kind::Raw:
      return {{"config", json_},
              {"plan", {{"tp", plan_.tp}, {"ep", plan_.ep}, {"pp", plan_.pp}, {"batch", plan_.batch},
                        {"seq", plan_.seq}, {"plan", plan_style_name(plan_.style)}}}};
    default: return nullptr;
  }
}

namespace {

const CheckOptions kNoMemory = [] {
  CheckOptions o;
  o.memory = false;
  return o;
}();

bool has_attention_error(const CheckResult& r) {
  for (const auto& f : r.findings)
    if (f.severity == Severity::Error &&
        (f.id == "q-heads-split" || f.id == "kv-heads-split" || f.id == "gqa-head-mismatch" || f.id == "gqa-misaligned"))
      return true;
  return false;
}

}  // namespace

std::vector<Property> static_properties() {
  std::vector<Property> v;
  // Generators are built once per property; each case then costs one draw (see Chooser).
  Limits rkv;
  rkv.tp_ok = [](const ModelConfig& c, int64_t tp) {
    const int64_t kv = c.num_key_value_heads;
    return c.num_attention_heads % tp == 0 && (tp % kv == 0 || kv % tp == 0);
  };
  v.push_back({"replicate-kv-preconditions",
               "replicate-kv never fails where heads % tp == 0 and tp, kv heads divide one another",
               false, [gen = gen_case(rkv)](CaseRecord& last) {
                 FuzzCase fc = *gen;
                 fc.plan.style = PlanStyle::ReplicateKv;
                 last = fc;
                 const int64_t tp = fc.plan.tp, h = fc.config.num_attention_heads, kv = fc.config.num_key_value_heads;
                 const bool pre = h % tp == 0 && (tp % kv == 0 || kv % tp == 0);
                 RC_PRE(pre);  // holds by construction (tp_ok); kept as the property's statement
                 CheckResult r = check(fc.config, fc.plan, kNoMemory);
                 RC_ASSERT(!has_attention_error(r));
               }});
  Limits hf;
  hf.tp_ok = [](const ModelConfig& c, int64_t tp) { return c.num_attention_heads % tp == 0; };
  v.push_back({"hf-auto-kv-columns",
               "hf-auto fails in attention exactly where a rank's KV columns are not a whole number of heads "
               "(with query heads divisible by tp)",
               false, [gen = gen_case(hf)](CaseRecord& last) {
                 FuzzCase fc = *gen;
                 fc.plan.style = PlanStyle::HfAuto;
                 last = fc;
                 const int64_t tp = fc.plan.tp, h = fc.config.num_attention_heads, kv = fc.config.num_key_value_heads;
                 const int64_t D = fc.config.head_dim;
                 RC_PRE(h % tp == 0);  // by construction
                 // Independent oracle: KV columns kv*D split evenly into tp parts of whole heads.
                 const bool kv_whole = (kv * D) % tp == 0 && ((kv * D) / tp) % D == 0;
                 CheckResult r = check(fc.config, fc.plan, kNoMemory);
                 RC_ASSERT(has_attention_error(r) == !kv_whole);
                 if (!kv_whole) {
                   // The first attention failure (HF's load-time refusals, e.g. of an uneven vocab, come first
                   // in a run but are other findings).
                   const Finding* f = nullptr;
                   for (const auto& x : r.findings)
                     if (!f && x.severity == Severity::Error && x.phase == "forward") f = &x;
                   RC_ASSERT(f != nullptr);
                   // The text names the view's shape: [rows of the first micro-batch, seq, -1, head_dim].
                   char shape[96];
                   const int64_t rows = (fc.plan.batch + fc.plan.micro_batches - 1) / fc.plan.micro_batches;
                   std::snprintf(shape, sizeof shape, "[%lld, %lld, -1, %lld]", (long long)rows,
                                 (long long)fc.plan.seq, (long long)D);
                   RC_ASSERT(f->error_text.find(shape) != std::string::npos);
                 }
               }});
  v.push_back({"checker-total",
               "the checker never crashes on any config or plan, and its JSON output round-trips", false,
               [gcfg = gen_absurd_config(), gplan = gen_any_plan()](CaseRecord& last) {
                 nlohmann::json cj = *gcfg;
                 const ParallelPlan p = *gplan;
                 last.set_raw(std::move(cj), p);
                 ModelConfig c;
                 try {
                   c = read_model_config(last.raw_config(), "fuzz/config.json");
                 } catch (const InputError&) {
                   return;  // config rejected with a clear error
                 }
                 CheckResult r;
                 try {
                   r = check(c, p);
                 } catch (const PlanError&) {
                   return;  // plan rejected with a clear error
                 }
                 nlohmann::json j = r;
                 CheckResult back = j.get<CheckResult>();
                 RC_ASSERT(nlohmann::json(back).dump() == j.dump());
               }});
  Limits mem;
  mem.tp_ok = [](const ModelConfig& c, int64_t tp) {
    return c.num_attention_heads % tp == 0 && c.num_key_value_heads % tp == 0 && c.intermediate_size % tp == 0 &&
           c.moe_intermediate_size % tp == 0 && c.vocab_size % tp == 0;
  };
  v.push_back({"memory-conservation",
               "per-rank weight memory sums to the model plus the replicated parts (even shards, pp = 1)", false,
               [gen = gen_case(mem)](CaseRecord& last) {
                 FuzzCase fc = *gen;
                 fc.plan.pp = 1;
                 fc.plan.ep = 1;
                 fc.plan.dtype = DType::F32;
                 last = fc;
                 const ModelConfig& c = fc.config;
                 const int64_t tp = fc.plan.tp;
                 RC_PRE(c.num_attention_heads % tp == 0 && c.num_key_value_heads % tp == 0 &&
                        c.intermediate_size % tp == 0 && c.moe_intermediate_size % tp == 0 && c.vocab_size % tp == 0);
                 auto mem = estimate_memory(c, fc.plan);
                 int64_t sum = 0;
                 for (const auto& m : mem) sum += m.weight_bytes / 4;
                 // Replicated: norms (2H per layer + final H), q/k norms (2D per layer, when the family
                 // has them), routers, embedding; and what HF's plan for the family leaves out: the
                 // routed experts and the shared expert with its gate (Qwen2-MoE).
                 const std::string layer0 = c.module_prefix + ".layers.0.mlp.";
                 const bool experts_whole = hf_tp_style(c, layer0 + "experts.gate_up_proj").empty();
                 const bool shared_whole = hf_tp_style(c, layer0 + "shared_expert.gate_proj").empty();
                 const int64_t S = c.shared_expert_intermediate_size, H = c.hidden_size;
                 int64_t rep = c.embedding_params() + H;
                 for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
                   rep += 2 * H + (c.qk_norm ? 2 * c.head_dim : 0);
                   if (!c.layer_is_sparse(l)) continue;
                   rep += c.router_params() + (experts_whole ? c.num_experts * c.expert_params() : 0);
                   if (S > 0) rep += (shared_whole ? 3 * S * H : 0) + (c.shared_expert_gate ? H : 0);
                 }
                 RC_ASSERT(sum == c.total_params() + (tp - 1) * rep);
               }});
  return v;
}

PropertyReport run_property(const Property& p, const RunOptions& o) {
  PropertyReport rep;
  rep.name = p.name;
  auto t0 = std::chrono::steady_clock::now();
  auto last = std::make_shared<CaseRecord>();
  auto failing = std::make_shared<CaseRecord>();
  int calls = 0;
  auto body = p.body;
  auto progress = o.progress;
  const int total = o.cases;
  const std::string name = p.name;
  auto prop = rc::detail::toProperty([=, &calls]() {
    ++calls;
    if (progress && calls % 25 == 0) progress(name, std::min(calls, total), total);
    try {
      body(*last);
    } catch (const rc::detail::CaseResult& cr) {
      if (cr.type == rc::detail::CaseResult::Type::Failure) *failing = *last;
      throw;  // discards (RC_PRE) and RC_SUCCEED pass through
    } catch (...) {
      *failing = *last;  // during shrinking the last failing case is the minimal one
      throw;
    }
  });
  rc::detail::TestMetadata md;
  md.id = p.name;
  md.description = p.description;
  rc::detail::TestParams params;
  params.seed = o.seed;
  params.maxSuccess = o.cases;
  params.maxSize = 100;
  std::unordered_map<std::string, rc::detail::Reproduce> repro;
  if (!o.reproduce.empty()) {
    auto cfg = rc::detail::configFromString("reproduce=" + o.reproduce);
    repro = cfg.reproduce;
    if (!repro.count(p.name)) throw PlanError("--reproduce", o.reproduce.substr(0, 40), "not a reproduce string of " + p.name);
  }
  struct Quiet : rc::detail::TestListener {
    void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
    void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
    void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
  } quiet;
  const rc::detail::TestResult result = rc::detail::checkProperty(prop, md, params, quiet, repro);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rc::detail::SuccessResult ok;
  rc::detail::FailureResult fail;
  rc::detail::GaveUpResult gave;
  rc::detail::Error err;
  if (result.match(ok)) {
    rep.passed = true;
    rep.cases = ok.numSuccess;
  } else if (result.match(fail)) {
    rep.cases = fail.numSuccess;
    rep.failure = fail.description;
    for (const auto& [k, v] : fail.counterExample) rep.counterexample += k + " = " + v + "\n";
    rc::detail::Configuration cfg;
    cfg.reproduce[p.name] = fail.reproduce;
    std::string s = rc::detail::configToMinimalString(cfg);
    const std::string key = "reproduce=";
    auto pos = s.find(key);
    rep.reproduce = pos == std::string::npos ? s : s.substr(pos + key.size());
    rep.minimal = failing->to_json();
    if (!o.out_dir.empty() && rep.minimal.is_object()) {
      ::mkdir(o.out_dir.c_str(), 0755);
      const std::string base = o.out_dir + "/" + p.name;
      ::mkdir(base.c_str(), 0755);
      if (rep.minimal.contains("config")) {
        write_file_atomic(base + "/config.json", rep.minimal["config"].dump(2) + "\n");
        rep.written.push_back(base + "/config.json");
      }
      if (rep.minimal.contains("plan")) {
        write_file_atomic(base + "/plan.json", rep.minimal["plan"].dump(2) + "\n");
        rep.written.push_back(base + "/plan.json");
      }
    }
  } else if (result.match(gave)) {
    rep.cases = gave.numSuccess;
    rep.passed = gave.numSuccess > 0;
    rep.failure = "gave up: " + gave.description;
  } else if (result.match(err)) {
    rep.failure = "error: " + err.description;
  }
  return rep;
}

std::string replay_command(const Property& p, const RunOptions& o, const PropertyReport& r) {
  std::string s = "build/shardcheck fuzz --property " + p.name + " --seed " + std::to_string(o.seed) +
                  " --reproduce '" + r.reproduce + "'";
  if (const faults::Injection* f = faults::active()) s += " --inject-fault " + faults::describe(*f);
  return s;
}

void to_json(nlohmann::json& j, const PropertyReport& r) {
  j = {{"name", r.name},           {"passed", r.passed},      {"cases", r.cases},
       {"seconds", r.seconds},     {"failure", r.failure},    {"counterexample", r.counterexample},
       {"reproduce", r.reproduce}, {"minimal", r.minimal},    {"written", r.written}};
}

}  // namespace sc::fuzz
