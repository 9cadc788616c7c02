// Sharded checkpoint index (model.safetensors.index.json, models/safetensors.h): any index over two
// valid shards gives a Checkpoint or a CheckpointError; every tensor it maps reads in full.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "models/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

std::string make_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sc-fuzz-index.XXXXXX";
  if (!mkdtemp(tmpl.data())) sc::fuzz::fail("mkdtemp");
  const float x[2] = {1, 2};
  const int8_t y[3] = {1, 2, 3};
  const uint16_t z[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
  sc::write_safetensors(tmpl + "/model-00001-of-00002.safetensors",
                        {{"x", sc::DType::F32, {2}, x}, {"y", sc::DType::I8, {3}, y}}, {{"format", "pt"}});
  sc::write_safetensors(tmpl + "/model-00002-of-00002.safetensors", {{"z", sc::DType::BF16, {2, 2}, z}});
  ::mkdir((tmpl + "/sub").c_str(), 0755);
  return tmpl;
}

// Created once, removed at exit (the string is never destroyed, so the exit handler may use it).
const std::string& dir() {
  static const std::string* d = [] {
    auto* p = new std::string(make_dir());
    std::atexit([] {
      const std::string& d = dir();
      for (const char* f : {"/model-00001-of-00002.safetensors", "/model-00002-of-00002.safetensors",
                            "/model.safetensors.index.json"})
        ::unlink((d + f).c_str());
      ::rmdir((d + "/sub").c_str());
      ::rmdir(d.c_str());
    });
    return p;
  }();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string index = dir() + "/model.safetensors.index.json";
  {
    std::ofstream out(index, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    if (!out) sc::fuzz::fail("cannot write " + index);
  }
  sc::fuzz::expect_input_error("safetensors index", [&] {
    const sc::Checkpoint ck = sc::Checkpoint::open(dir());
    for (const std::string& name : ck.names()) {
      const sc::TensorInfo& t = ck.info(name);
      std::vector<uint8_t> buf(t.nbytes());
      ck.read(name, buf.data(), buf.size());
    }
    (void)ck.metadata();
  });
  return 0;
}
