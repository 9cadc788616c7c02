#include "checks/fuzz/fuzz.h"

#include <chrono>
#include <sstream>
#include <sys/stat.h>

#include "checks/checker.h"
#include "checks/findings.h"
#include "models/atomic_file.h"
#include "models/errors.h"

namespace sc::fuzz {

std::string FuzzCase::describe() const {
  const ModelConfig& c = config;
  std::ostringstream os;
  os << c.model_type << " heads " << c.num_attention_heads << "/" << c.num_key_value_heads << " x " << c.head_dim
     << " hidden " << c.hidden_size << " layers " << c.num_hidden_layers;
  if (c.is_moe()) os << " experts " << c.num_experts << " top-" << c.num_experts_per_tok << " moe " << c.moe_intermediate_size;
  os << " | " << plan.describe() << " batch " << plan.batch << " seq " << plan.seq << " "
     << dtype_torch_name(plan.dtype);
  return os.str();
}

void to_json(nlohmann::json& j, const FuzzCase& c) {
  j = nlohmann::json{{"config", c.config.to_json()}, {"plan", c.plan}, {"describe", c.describe()}};
}

rc::Gen<FuzzCase> gen_case(const Limits& lim) {
  using namespace rc;
  // Head geometry first: kv heads, group size (heads = kv * groups), head_dim.
  return gen::mapcat(gen::tuple(gen::element<int64_t>(1, 2, 4, 3, 8, 6), gen::element<int64_t>(1, 2, 4, 3, 8),
                                lim.tiny ? gen::element<int64_t>(4, 8, 16, 12) : gen::element<int64_t>(64, 128, 96, 8, 16, 24, 40, 80, 256)),
                     [lim](const std::tuple<int64_t, int64_t, int64_t>& t) {
    const int64_t kv = std::get<0>(t), groups = std::get<1>(t), hd = std::get<2>(t);
    const int64_t maxr = lim.max_ranks;
    return gen::map(
        gen::tuple(gen::inRange<int64_t>(1, maxr + 1),              // tp
                   gen::inRange<int64_t>(0, 4),                     // ep choice
                   gen::inRange<int64_t>(1, 5),                     // pp
                   gen::element<int64_t>(1, 2, 4, 8, 3, 5, 16),     // experts
                   gen::inRange<int64_t>(1, 9),                     // top-k (clamped)
                   gen::inRange<int64_t>(1, 5),                     // layers
                   gen::inRange<int64_t>(1, 3),                     // decoder_sparse_step
                   gen::inRange<int64_t>(1, 9),                     // hidden / 8 (tiny) or / 64
                   gen::element<std::string>("hf-auto", "replicate-kv"),
                   gen::inRange<int64_t>(1, 4),                     // batch
                   gen::inRange<int64_t>(1, 7),                     // seq
                   gen::arbitrary<bool>(),                          // dense model
                   gen::element<int64_t>(8, 16, 24, 12, 32)),       // moe / intermediate unit
        [=](const std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, std::string,
                             int64_t, int64_t, bool, int64_t>& u) {
          FuzzCase fc;
          ModelConfig& c = fc.config;
          ParallelPlan& p = fc.plan;
          const bool dense = std::get<11>(u);
          c.name = "fuzz";
          c.model_type = dense ? "qwen3" : "qwen3_moe";
          c.num_key_value_heads = kv;
          c.num_attention_heads = kv * groups;
          c.head_dim = hd;
          c.hidden_size = std::get<7>(u) * (lim.tiny ? 8 : 64);
          c.num_hidden_layers = std::get<5>(u);
          c.vocab_size = lim.tiny ? 64 : 1024;
          c.intermediate_size = std::get<12>(u) * 2;
          if (!dense) {
            c.num_experts = std::get<3>(u);
            c.num_experts_per_tok = std::min<int64_t>(std::get<4>(u), c.num_experts);
            c.moe_intermediate_size = std::get<12>(u);
            c.decoder_sparse_step = std::get<6>(u);
            c.norm_topk_prob = (std::get<4>(u) % 2) == 0;
          }
          c.dtype = DType::F32;
          p.tp = std::get<0>(u);
          // ep: 1, tp, a divisor of tp, or a multiple of tp (valid by construction).
          switch (std::get<1>(u)) {
            case 0: p.ep = 1; break;
            case 1: p.ep = p.tp; break;
            case 2: p.ep = p.tp % 2 == 0 ? p.tp / 2 : 1; break;
            default: p.ep = p.tp * 2 <= maxr ? p.tp * 2 : p.tp; break;
          }
          if (dense) p.ep = 1;
          p.pp = std::min<int64_t>(std::get<2>(u), lim.tiny ? c.num_hidden_layers : 8);
          while (p.world_size() > maxr && p.pp > 1) p.pp--;
          while (p.world_size() > maxr && p.ep > 1) p.ep /= 2;
          if (p.tp % p.ep != 0 && p.ep % p.tp != 0) p.ep = 1;
          p.style = plan_style_from_name(std::get<8>(u));
          p.batch = std::get<9>(u);
          p.seq = std::get<10>(u);
          p.dtype = lim.tiny ? DType::F64 : DType::BF16;
          return fc;
        });
  });
}

rc::Gen<nlohmann::json> gen_absurd_config() {
  using namespace rc;
  using nlohmann::json;
  // Each key: missing, a sane value, or an absurd one (negative, zero, huge, float, string, null).
  auto value = gen::oneOf(gen::map(gen::inRange<int64_t>(-3, 300), [](int64_t v) { return json(v); }),
                          gen::element(json(0), json(-1), json(int64_t(1) << 40), json(1e300), json(2.5),
                                       json("64"), json(nullptr), json::array(), json::object(),
                                       json(uint64_t(18446744073709551615ull)), json(true)));
  const std::vector<std::string> keys = {"hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                                         "intermediate_size", "moe_intermediate_size", "num_experts",
                                         "num_local_experts", "num_experts_per_tok", "num_hidden_layers",
                                         "vocab_size", "decoder_sparse_step", "max_position_embeddings",
                                         "rms_norm_eps", "rope_theta", "tie_word_embeddings", "norm_topk_prob",
                                         "mlp_only_layers", "torch_dtype", "dtype", "rope_parameters"};
  return gen::map(gen::tuple(gen::element<std::string>("qwen3_moe", "qwen3", "llama", ""),
                             gen::container<std::vector<json>>(keys.size(), value),
                             gen::container<std::vector<bool>>(keys.size(), gen::arbitrary<bool>())),
                  [keys](const std::tuple<std::string, std::vector<json>, std::vector<bool>>& t) {
                    json j = json::object();
                    if (!std::get<0>(t).empty()) j["model_type"] = std::get<0>(t);
                    for (size_t i = 0; i < keys.size(); ++i)
                      if (std::get<2>(t)[i]) j[keys[i]] = std::get<1>(t)[i];
                    return j;
                  });
}

rc::Gen<ParallelPlan> gen_any_plan() {
  using namespace rc;
  return gen::map(gen::tuple(gen::inRange<int64_t>(-1, 40), gen::inRange<int64_t>(-1, 40), gen::inRange<int64_t>(-1, 12),
                             gen::inRange<int64_t>(0, 300), gen::inRange<int64_t>(0, 300), gen::arbitrary<bool>()),
                  [](const std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool>& t) {
                    ParallelPlan p;
                    p.tp = std::get<0>(t);
                    p.ep = std::get<1>(t);
                    p.pp = std::get<2>(t);
                    p.batch = std::get<3>(t);
                    p.seq = std::get<4>(t);
                    p.style = std::get<5>(t) ? PlanStyle::ReplicateKv : PlanStyle::HfAuto;
                    return p;
                  });
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
  v.push_back({"replicate-kv-preconditions",
               "replicate-kv never fails where heads % tp == 0 and tp, kv heads divide one another",
               false, [](nlohmann::json& last) {
                 Limits lim;
                 FuzzCase fc = *gen_case(lim);
                 fc.plan.style = PlanStyle::ReplicateKv;
                 last = fc;
                 const int64_t tp = fc.plan.tp, h = fc.config.num_attention_heads, kv = fc.config.num_key_value_heads;
                 const bool pre = h % tp == 0 && (tp % kv == 0 || kv % tp == 0);
                 RC_PRE(pre);
                 CheckResult r = check(fc.config, fc.plan, kNoMemory);
                 RC_ASSERT(!has_attention_error(r));
               }});
  v.push_back({"hf-auto-kv-columns",
               "hf-auto fails in attention exactly where a rank's KV columns are not a whole number of heads "
               "(with query heads divisible by tp)",
               false, [](nlohmann::json& last) {
                 Limits lim;
                 FuzzCase fc = *gen_case(lim);
                 fc.plan.style = PlanStyle::HfAuto;
                 last = fc;
                 const int64_t tp = fc.plan.tp, h = fc.config.num_attention_heads, kv = fc.config.num_key_value_heads;
                 const int64_t D = fc.config.head_dim;
                 RC_PRE(h % tp == 0);
                 // Independent oracle: KV columns kv*D split evenly into tp parts of whole heads.
                 const bool kv_whole = (kv * D) % tp == 0 && ((kv * D) / tp) % D == 0;
                 CheckResult r = check(fc.config, fc.plan, kNoMemory);
                 RC_ASSERT(has_attention_error(r) == !kv_whole);
                 if (!kv_whole) {
                   const Finding* f = r.first_error();
                   RC_ASSERT(f != nullptr);
                   // The text names the users' view shape: [batch, seq, -1, head_dim].
                   const std::string shape = "[" + std::to_string(fc.plan.batch) + ", " + std::to_string(fc.plan.seq) +
                                             ", -1, " + std::to_string(D) + "]";
                   RC_ASSERT(f->error_text.find(shape) != std::string::npos);
                 }
               }});
  v.push_back({"checker-total",
               "the checker never crashes on any config or plan, and its JSON output round-trips", false,
               [](nlohmann::json& last) {
                 nlohmann::json cj = *gen_absurd_config();
                 ParallelPlan p = *gen_any_plan();
                 last = {{"config", cj}, {"plan", {{"tp", p.tp}, {"ep", p.ep}, {"pp", p.pp}, {"batch", p.batch}, {"seq", p.seq}}}};
                 ModelConfig c;
                 try {
                   c = ModelConfig::from_json(cj, "fuzz/config.json");
                 } catch (const InputError&) {
                   RC_SUCCEED("config rejected with a clear error");
                 }
                 CheckResult r;
                 try {
                   r = check(c, p);
                 } catch (const PlanError&) {
                   RC_SUCCEED("plan rejected with a clear error");
                 }
                 nlohmann::json j = r;
                 CheckResult back = j.get<CheckResult>();
                 RC_ASSERT(nlohmann::json(back).dump() == j.dump());
               }});
  v.push_back({"memory-conservation",
               "per-rank weight memory sums to the model plus the replicated parts (even shards, pp = 1)", false,
               [](nlohmann::json& last) {
                 Limits lim;
                 FuzzCase fc = *gen_case(lim);
                 fc.plan.pp = 1;
                 fc.plan.ep = 1;
                 last = fc;
                 const ModelConfig& c = fc.config;
                 const int64_t tp = fc.plan.tp;
                 RC_PRE(c.num_attention_heads % tp == 0 && c.num_key_value_heads % tp == 0 &&
                        c.intermediate_size % tp == 0 && c.moe_intermediate_size % tp == 0 && c.vocab_size % tp == 0);
                 fc.plan.dtype = DType::F32;
                 auto mem = estimate_memory(c, fc.plan);
                 int64_t sum = 0;
                 for (const auto& m : mem) sum += m.weight_bytes / 4;
                 // Replicated: norms (2H per layer + final H), q/k norms (2D per layer), routers, embedding.
                 int64_t rep = c.embedding_params() + c.hidden_size;
                 for (int64_t l = 0; l < c.num_hidden_layers; ++l)
                   rep += 2 * c.hidden_size + 2 * c.head_dim + (c.layer_is_sparse(l) ? c.router_params() : 0);
                 if (c.tie_word_embeddings) rep += 0;
                 RC_ASSERT(sum == c.total_params() + (tp - 1) * rep);
               }});
  return v;
}

PropertyReport run_property(const Property& p, const RunOptions& o) {
  PropertyReport rep;
  rep.name = p.name;
  auto t0 = std::chrono::steady_clock::now();
  auto last = std::make_shared<nlohmann::json>();
  auto failing = std::make_shared<nlohmann::json>();
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
    rep.minimal = *failing;
    if (!o.out_dir.empty() && failing->is_object()) {
      ::mkdir(o.out_dir.c_str(), 0755);
      const std::string base = o.out_dir + "/" + p.name;
      ::mkdir(base.c_str(), 0755);
      if (failing->contains("config")) {
        write_file_atomic(base + "/config.json", (*failing)["config"].dump(2) + "\n");
        rep.written.push_back(base + "/config.json");
      }
      if (failing->contains("plan")) {
        write_file_atomic(base + "/plan.json", (*failing)["plan"].dump(2) + "\n");
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
  return "build/shardcheck fuzz --property " + p.name + " --seed " + std::to_string(o.seed) + " --reproduce '" +
         r.reproduce + "'";
}

void to_json(nlohmann::json& j, const PropertyReport& r) {
  j = {{"name", r.name},           {"passed", r.passed},      {"cases", r.cases},
       {"seconds", r.seconds},     {"failure", r.failure},    {"counterexample", r.counterexample},
       {"reproduce", r.reproduce}, {"minimal", r.minimal},    {"written", r.written}};
}

}  // namespace sc::fuzz
