// config.json (models/config.h, read through its family as every command reads it:
// families/family.h): any bytes give a ModelConfig or a ConfigError; a parsed config's derived sizes
// are computable, and a Qwen3 config survives a round trip through to_json.
#include <string>

#include <nlohmann/json.hpp>

#include "families/family.h"
#include "models/config.h"
#include "models/json_util.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sc::fuzz::expect_input_error("config", [&] {
    const sc::ModelConfig c =
        sc::read_model_config(sc::parse_json_strict(text, "config.json", sc::InputKind::Config), "config.json");
    sc::fuzz::check(c.total_params() > 0, "total_params not positive");
    sc::fuzz::check(c.num_sparse_layers() <= c.num_hidden_layers, "more sparse layers than layers");
    if (c.family != "qwen3") return;  // to_json writes Qwen3's spelling
    const nlohmann::json j = c.to_json();
    const sc::ModelConfig back = sc::ModelConfig::from_json(j, "roundtrip");
    sc::fuzz::check(back.to_json() == j, "to_json round trip differs: " + j.dump());
  });
  return 0;
}
