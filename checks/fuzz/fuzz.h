// Property-based fuzzing of parallel layouts (rapidcheck). Generators build valid configs and
// plans by construction (gen::mapcat, no filtering); properties are run with an explicit seed and
// case budget; a failure shrinks to a minimal case that is written out as config.json + plan.json
// with a one-line replay command. Torch-free: the numerical properties (harness/fuzz/) plug in
// through the same runner.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <rapidcheck.h>

#include "layout/plan.h"
#include "models/config.h"

namespace sc::fuzz {

struct FuzzCase {
  ModelConfig config;
  ParallelPlan plan;
  std::string describe() const;  // one line: geometry + plan
};
void to_json(nlohmann::json& j, const FuzzCase& c);
// How rapidcheck prints a counterexample (found by ADL): the describe() line.
inline void showValue(const FuzzCase& c, std::ostream& os) { os << c.describe(); }

struct Limits {
  int64_t max_ranks = 16;    // tp, ep, pp up to this (8 for numerical properties)
  bool tiny = false;         // tiny widths for numerical runs (head_dim <= 16, hidden <= 64, ...)
  // When set, tp is drawn only among 1..max_ranks for which tp_ok(config, tp) holds (tp = 1 when
  // none does): a property's precondition on tp built in, instead of discarding cases.
  std::function<bool(const ModelConfig&, int64_t tp)> tp_ok;
};

// ---- choice sequences ----
// A generated value is a pure function of a sequence of small choices (Hypothesis-style): the
// builder draws every part through Chooser::pick(n), an index in [0, n) where 0 is the simplest.
// Generation costs one rapidcheck random draw plus a splitmix64 stream, and no allocation per part;
// shrinking lowers one recorded choice at a time (every smaller value for small ranges, smallest
// first; halving steps for large ones) and rebuilds the value by replaying the choices.
class Chooser {
 public:
  explicit Chooser(uint64_t seed) : state_(seed) { choices_.reserve(64); }
  // Replays `choices` (a choice past its range is clamped; missing ones are 0).
  explicit Chooser(const std::vector<uint32_t>* replay) : replay_(replay) { choices_.reserve(replay->size()); }
  int64_t pick(int64_t n);  // in [0, n); n >= 1
  template <typename T>
  T element(std::initializer_list<T> xs) { return xs.begin()[pick(int64_t(xs.size()))]; }
  const std::vector<uint32_t>& choices() const { return choices_; }

 private:
  uint64_t state_ = 0;
  const std::vector<uint32_t>* replay_ = nullptr;
  std::vector<uint32_t> choices_;
};

// The shrinks of a choice vector: for each position in order, the smaller values of that choice.
std::vector<std::vector<uint32_t>> shrink_choices(const std::vector<uint32_t>& c, size_t position);

template <typename T>
class ChoiceShrinkable {
 public:
  using Build = std::shared_ptr<const std::function<T(Chooser&)>>;
  ChoiceShrinkable(Build b, std::vector<uint32_t> choices, T value)
      : build_(std::move(b)), choices_(std::move(choices)), value_(std::move(value)) {}
  T value() const { return value_; }
  rc::Seq<rc::Shrinkable<T>> shrinks() const {
    Build b = build_;
    std::vector<uint32_t> c = choices_;
    return rc::seq::map(rc::seq::mapcat(rc::seq::range<size_t>(0, c.size()),
                                        [c](size_t i) { return rc::seq::fromContainer(shrink_choices(c, i)); }),
                        [b](const std::vector<uint32_t>& smaller) {
                          Chooser replay(&smaller);
                          T v = (*b)(replay);
                          return rc::makeShrinkable<ChoiceShrinkable<T>>(b, replay.choices(), std::move(v));
                        });
  }

 private:
  Build build_;
  std::vector<uint32_t> choices_;
  T value_;
};

// A rapidcheck generator from a builder over choices.
template <typename T>
rc::Gen<T> gen_from_choices(std::function<T(Chooser&)> build) {
  auto b = std::make_shared<const std::function<T(Chooser&)>>(std::move(build));
  return rc::Gen<T>([b](const rc::Random& random, int) {
    rc::Random r = random;
    Chooser ch(r.next());
    T v = (*b)(ch);
    return rc::makeShrinkable<ChoiceShrinkable<T>>(b, ch.choices(), std::move(v));
  });
}

// A valid Qwen3(-MoE) config and a valid plan for it. Shrinks toward small heads/tp/experts.
rc::Gen<FuzzCase> gen_case(const Limits& lim);
// Arbitrary JSON objects shaped like config.json with absurd values (negative, zero, huge, wrong
// types, missing keys) for the never-crash property.
rc::Gen<nlohmann::json> gen_absurd_config();
rc::Gen<ParallelPlan> gen_any_plan();

// A property run.
struct PropertyReport {
  std::string name;
  bool passed = false;
  int cases = 0;              // successful cases before the end (or the failure)
  double seconds = 0;
  std::string failure;        // rapidcheck's description of the failure
  std::string counterexample; // shown values of the minimal case
  std::string reproduce;      // RC reproduce string (for --reproduce)
  nlohmann::json minimal;     // the minimal FuzzCase as JSON (when the property records it)
  std::vector<std::string> written;  // files written for the minimal case
};
void to_json(nlohmann::json& j, const PropertyReport& r);

// What a property checks, recorded before it checks it (so the runner can write out the minimal
// failing case after shrinking). Kept as given and turned into JSON only for a failure: recording
// costs a copy of a small struct per case, not a serialisation.
class CaseRecord {
 public:
  CaseRecord& operator=(const FuzzCase& c);
  CaseRecord& operator=(nlohmann::json j);  // free-form (already JSON)
  // A config.json object and a plan (the never-crash property): JSON {"config", "plan"}.
  void set_raw(nlohmann::json config, const ParallelPlan& plan);
  const nlohmann::json& raw_config() const { return json_; }
  bool empty() const { return kind_ == Kind::None; }
  nlohmann::json to_json() const;  // null when empty

 private:
  enum class Kind { None, Case, Json, Raw } kind_ = Kind::None;
  FuzzCase case_;
  nlohmann::json json_;
  ParallelPlan plan_;
};

// A named property. Its body draws its inputs with `*gen` (rapidcheck), stores the case it checks
// in `last`, and asserts with RC_ASSERT.
struct Property {
  std::string name;
  std::string description;
  bool numerical = false;  // needs the harness (LibTorch)
  std::function<void(CaseRecord& last)> body;
};
std::vector<Property> static_properties();

struct RunOptions {
  uint64_t seed = 1;
  int cases = 100;
  std::string reproduce;      // replay a failure (from a PropertyReport.reproduce)
  std::string out_dir;        // where a minimal failing case is written ("" = not written)
  std::function<void(const std::string& name, int done, int total)> progress;
};
PropertyReport run_property(const Property& p, const RunOptions& o);

// The CLI line that replays a failure.
std::string replay_command(const Property& p, const RunOptions& o, const PropertyReport& r);

}  // namespace sc::fuzz
