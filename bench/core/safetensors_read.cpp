// Benchmarks of safetensors reads from a ~64 MB file in the page cache:
//   full        Checkpoint::read of one whole 4096 x 4096 F32 tensor
//   rows        read_slice of 1/8 of its rows (dim 0: one contiguous run)
//   cols        read_slice of 1/8 of its columns (dim 1: 4096 strided 2 KB runs)
//   fread       plain sequential fread of the whole file (baseline), in 1 MiB chunks into a
//               cache-resident buffer, and in one call into a file-sized buffer (the fair
//               comparison for "full", which also writes 64 MB of destination)
// Each reports bytes/s of the bytes delivered to the caller.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "models/safetensors.h"

namespace {

constexpr int64_t kRows = 4096, kCols = 4096;  // 64 MiB of F32
const char* const kName = "model.layers.0.mlp.experts.0.up_proj.weight";

// The file is written once per process and removed at exit.
struct BenchFile {
  std::string path = "/tmp/sc_bench_safetensors_" + std::to_string(getpid()) + ".safetensors";
  BenchFile() {
    std::vector<float> w(size_t(kRows * kCols));
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 1000) * 0.5f;
    sc::write_safetensors(path, {{kName, sc::DType::F32, {kRows, kCols}, w.data()}}, {{"format", "pt"}});
  }
  ~BenchFile() { std::remove(path.c_str()); }
};
const std::string& bench_path() {
  static BenchFile f;
  return f.path;
}
const sc::Checkpoint& checkpoint() {
  static sc::Checkpoint ck = sc::Checkpoint::open(bench_path());
  return ck;
}

void BM_ReadFullTensor(benchmark::State& state) {
  const auto& ck = checkpoint();
  const uint64_t n = ck.info(kName).nbytes();
  std::vector<uint8_t> dst(n);
  for (auto _ : state) {
    ck.read(kName, dst.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void BM_ReadSliceRows(benchmark::State& state) {
  const auto& ck = checkpoint();
  const int64_t part = kRows / 8;
  const uint64_t n = uint64_t(part * kCols) * sizeof(float);
  std::vector<uint8_t> dst(n);
  int64_t k = 0;
  for (auto _ : state) {
    const int64_t b = (k++ % 8) * part;  // rotate through the 8 row shards
    ck.read_slice(kName, 0, b, b + part, dst.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void BM_ReadSliceCols(benchmark::State& state) {
  const auto& ck = checkpoint();
  const int64_t part = kCols / 8;
  const uint64_t n = uint64_t(kRows * part) * sizeof(float);
  std::vector<uint8_t> dst(n);
  int64_t k = 0;
  for (auto _ : state) {
    const int64_t b = (k++ % 8) * part;  // rotate through the 8 column shards
    ck.read_slice(kName, 1, b, b + part, dst.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void BM_FreadWholeFile(benchmark::State& state) {
  const std::string& p = bench_path();
  std::vector<char> buf(1 << 20);
  int64_t total = 0;
  for (auto _ : state) {
    FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) {
      state.SkipWithError("cannot open bench file");
      break;
    }
    size_t got;
    while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
      total += int64_t(got);
      benchmark::DoNotOptimize(buf.data());
    }
    std::fclose(f);
  }
  state.SetBytesProcessed(total);
}

void BM_FreadWholeFileIntoBuffer(benchmark::State& state) {
  const std::string& p = bench_path();
  std::vector<char> buf(size_t(kRows * kCols) * sizeof(float) + (1 << 16));  // file incl. header
  int64_t total = 0;
  for (auto _ : state) {
    FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) {
      state.SkipWithError("cannot open bench file");
      break;
    }
    total += int64_t(std::fread(buf.data(), 1, buf.size(), f));
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
    std::fclose(f);
  }
  state.SetBytesProcessed(total);
}

BENCHMARK(BM_ReadFullTensor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadSliceRows)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadSliceCols)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FreadWholeFile)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FreadWholeFileIntoBuffer)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
