// Uses the installed torch-free libraries: reads a config.json with ModelConfig, runs the checker
// on TP=8 (hf-auto) at batch 64 x seq 103 and requires the kv-heads-split finding with the users'
// exact LibTorch text (4 KV heads x 128 = 512 k_proj columns over 8 ranks = 64 columns, half a head:
// 64 x 103 x 64 = 421888 elements); renders it with sc_reports' text renderer.
//   consumer CONFIG.json
#include <cstdio>
#include <string>

#include "checks/checker.h"
#include "models/config.h"
#include "reports/text.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer CONFIG.json\n");
    return 2;
  }
  const sc::ModelConfig c = sc::ModelConfig::from_file(argv[1]);
  sc::ParallelPlan p;
  p.tp = 8;
  p.batch = 64;
  p.seq = 103;
  p.dtype = c.dtype;
  p.validate();
  const sc::CheckResult r = sc::check(c, p);
  const sc::Finding* f = r.first_error();
  const std::string want = "shape '[64, 103, -1, 128]' is invalid for input of size 421888";
  if (!f || f->id != "kv-heads-split" || f->error_text != want) {
    std::fprintf(stderr, "consumer: expected kv-heads-split with \"%s\", got %s\n", want.c_str(),
                 f ? (f->id + ": " + f->error_text).c_str() : "no error finding");
    return 1;
  }
  std::printf("%s", sc::render_check_text(r).c_str());
  std::printf("consumer: kv-heads-split found through the installed shardcheck package\n");
  return 0;
}
