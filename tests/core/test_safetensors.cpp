// Tests for models/safetensors: writer/reader round trip, slice reads (values and bytes read),
// sharded index checkpoints, and rejection of malformed files with errors that name the file,
// the offending field and its value.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "models/dtype.h"
#include "models/errors.h"
#include "models/safetensors.h"

namespace sc {
namespace {

namespace fs = std::filesystem;

// Per-test temporary directory under ::testing::TempDir(), removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir();
    if (tmpl.empty() || tmpl.back() != '/') tmpl += '/';
    tmpl += "sc_safetensors_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << tmpl;
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  // Raw file: 8-byte LE header length, header text, data bytes.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                        uint64_t header_len_field) const {
    std::string bytes;
    for (int i = 0; i < 8; ++i) bytes += char((header_len_field >> (8 * i)) & 0xFF);
    bytes += header;
    bytes += data;
    return write_bytes(name, bytes);
  }
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data = "") const {
    return write_raw(name, header, data, header.size());
  }
  std::string write_bytes(const std::string& name, const std::string& bytes) const {
    std::string p = file(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.close();
    EXPECT_TRUE(out.good()) << p;
    return p;
  }
  static std::string read_all(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
};

// Runs f, expects a CheckpointError whose message contains every one of `needles`.
void expect_checkpoint_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), InputKind::Checkpoint);
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}
void expect_open_error(const std::string& path, const std::vector<std::string>& needles) {
  std::vector<std::string> all = needles;
  all.insert(all.begin(), path);  // every message must name the file
  expect_checkpoint_error([&] { SafetensorsFile f(path); }, all);
  expect_checkpoint_error([&] { Checkpoint::open(path); }, all);
}

std::vector<uint8_t> pattern_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

const DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
                            DType::I16, DType::I8,  DType::U8,  DType::BOOL, DType::F8_E4M3, DType::F8_E5M2};

// ---- round trip -----------------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripEveryDtype) {
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<TensorToWrite> ts;
  for (DType d : kAllDTypes) {
    TensorToWrite t;
    t.name = std::string("t.") + dtype_st_name(d);
    t.dtype = d;
    t.shape = {2, 3};
    bufs.push_back(pattern_bytes(size_t(6 * dtype_size(d)), uint32_t(bufs.size() + 1)));
    t.data = bufs.back().data();
    ts.push_back(t);
  }
  // Scalar and empty tensors too.
  float scalar = 3.5f;
  ts.push_back({"scalar", DType::F32, {}, &scalar});
  ts.push_back({"empty", DType::BF16, {0, 4}, nullptr});
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "h\u00e9llo \"q\""}};
  const std::string p = file("all.safetensors");
  write_safetensors(p, ts, meta);

  // Header is space-padded so the data section starts 8-byte aligned.
  std::string raw = read_all(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw.substr(8, 16), "{\"__metadata__\":");

  Checkpoint ck = Checkpoint::open(p);
  EXPECT_EQ(ck.metadata(), meta);
  EXPECT_EQ(ck.names().size(), ts.size());
  uint64_t expect_read = 0;
  for (size_t i = 0; i < std::size(kAllDTypes); ++i) {
    const TensorInfo& info = ck.info(ts[i].name);
    EXPECT_EQ(info.dtype, kAllDTypes[i]);
    EXPECT_EQ(info.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(info.numel(), 6);
    EXPECT_EQ(info.nbytes(), bufs[i].size());
    EXPECT_EQ(info.file, p);
    std::vector<uint8_t> got(bufs[i].size());
    ck.read(ts[i].name, got.data(), got.size());
    EXPECT_EQ(got, bufs[i]) << ts[i].name;
    expect_read += got.size();
  }
  float s = 0;
  ck.read("scalar", &s, sizeof s);
  EXPECT_EQ(s, 3.5f);
  EXPECT_EQ(ck.info("scalar").numel(), 1);
  EXPECT_EQ(ck.info("empty").nbytes(), 0u);
  ck.read("empty", nullptr, 0);
  EXPECT_EQ(ck.bytes_read(), expect_read + sizeof s);

  // Tensors are laid out contiguously in name order.
  std::vector<std::string> names = ck.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  uint64_t pos = 0;
  for (const auto& nm : names) {
    EXPECT_EQ(ck.info(nm).data_begin, pos) << nm;
    pos = ck.info(nm).data_end;
  }
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  float x[4] = {};
  const std::string p = file("w.safetensors");
  auto expect_output_error = [&](const std::vector<TensorToWrite>& ts, const std::string& needle) {
    try {
      write_safetensors(p, ts);
      ADD_FAILURE() << "expected OutputError";
    } catch (const OutputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  expect_output_error({{"a", DType::F32, {4}, x}, {"a", DType::F32, {4}, x}}, "duplicate tensor name 'a'");
  expect_output_error({{"a", DType::F32, {4}, nullptr}}, "null data");
  expect_output_error({{"a", DType::F32, {-1, 4}, x}}, "negative dimension");
  expect_output_error({{"__metadata__", DType::F32, {4}, x}}, "reserved");
  EXPECT_FALSE(fs::exists(p));  // nothing written on failure
}

// ---- slices ---------------------------------------------------------------------------------

class SafetensorsSliceTest : public SafetensorsTest {
 protected:
  void SetUp() override {
    SafetensorsTest::SetUp();
    // m: 4x5 I32, m[i][j] = 10*i + j.   c: 2x3x4 I32, c[a][b][k] = 100*a + 10*b + k.
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 5; ++j) m_.push_back(10 * i + j);
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 3; ++b)
        for (int k = 0; k < 4; ++k) c_.push_back(100 * a + 10 * b + k);
    int8_t scalar = 7;
    path_ = file("s.safetensors");
    write_safetensors(path_, {{"m", DType::I32, {4, 5}, m_.data()},
                              {"c", DType::I32, {2, 3, 4}, c_.data()},
                              {"scalar", DType::I8, {}, &scalar}});
  }
  // Reads a slice and checks bytes_read() grew by exactly the slice size.
  std::vector<int32_t> slice(const Checkpoint& ck, const std::string& name, int dim, int64_t b, int64_t e,
                             size_t count) {
    std::vector<int32_t> out(count, -1);
    uint64_t before = ck.bytes_read();
    ck.read_slice(name, dim, b, e, out.data(), count * sizeof(int32_t));
    EXPECT_EQ(ck.bytes_read() - before, count * sizeof(int32_t));
    return out;
  }
  std::vector<int32_t> m_, c_;
  std::string path_;
};

TEST_F(SafetensorsSliceTest, Dim0Rows) {
  Checkpoint ck = Checkpoint::open(path_);
  EXPECT_EQ(slice(ck, "m", 0, 1, 3, 10), (std::vector<int32_t>{10, 11, 12, 13, 14, 20, 21, 22, 23, 24}));
  EXPECT_EQ(slice(ck, "m", 0, 3, 4, 5), (std::vector<int32_t>{30, 31, 32, 33, 34}));
  EXPECT_EQ(slice(ck, "c", 0, 1, 2, 12),
            (std::vector<int32_t>{100, 101, 102, 103, 110, 111, 112, 113, 120, 121, 122, 123}));
  // Only the slices were copied: 10 + 5 + 12 elements, never the whole tensors.
  EXPECT_EQ(ck.bytes_read(), (10 + 5 + 12) * sizeof(int32_t));
}

TEST_F(SafetensorsSliceTest, Dim1Columns) {
  Checkpoint ck = Checkpoint::open(path_);
  EXPECT_EQ(slice(ck, "m", 1, 2, 4, 8), (std::vector<int32_t>{2, 3, 12, 13, 22, 23, 32, 33}));
  EXPECT_EQ(slice(ck, "m", 1, 0, 1, 4), (std::vector<int32_t>{0, 10, 20, 30}));
  EXPECT_EQ(ck.bytes_read(), (8 + 4) * sizeof(int32_t));
}

TEST_F(SafetensorsSliceTest, MiddleAndLastDimOf3D) {
  Checkpoint ck = Checkpoint::open(path_);
  // dim 1 (middle) rows [1, 3): c[a][1..2][:].
  EXPECT_EQ(slice(ck, "c", 1, 1, 3, 16),
            (std::vector<int32_t>{10, 11, 12, 13, 20, 21, 22, 23, 110, 111, 112, 113, 120, 121, 122, 123}));
  // dim 1 single index 0.
  EXPECT_EQ(slice(ck, "c", 1, 0, 1, 8), (std::vector<int32_t>{0, 1, 2, 3, 100, 101, 102, 103}));
  // dim 2 (last) [1, 3): c[:][:][1..2].
  EXPECT_EQ(slice(ck, "c", 2, 1, 3, 12),
            (std::vector<int32_t>{1, 2, 11, 12, 21, 22, 101, 102, 111, 112, 121, 122}));
  // Whole range along a dim equals a full read.
  EXPECT_EQ(slice(ck, "c", 1, 0, 3, 24), c_);
  // Empty slice copies nothing.
  ck.read_slice("c", 2, 2, 2, nullptr, 0);
  EXPECT_EQ(ck.bytes_read(), (16 + 8 + 12 + 24) * sizeof(int32_t));
}

TEST_F(SafetensorsSliceTest, InvalidSliceArguments) {
  Checkpoint ck = Checkpoint::open(path_);
  std::vector<int32_t> buf(64);
  auto rs = [&](const std::string& n, int dim, int64_t b, int64_t e, uint64_t bytes) {
    return [&ck, &buf, n, dim, b, e, bytes] { ck.read_slice(n, dim, b, e, buf.data(), bytes); };
  };
  expect_checkpoint_error(rs("m", 2, 0, 1, 4), {path_, "'m'", "dim=2", "[4, 5]"});
  expect_checkpoint_error(rs("m", -1, 0, 1, 4), {path_, "dim=-1"});
  expect_checkpoint_error(rs("scalar", 0, 0, 1, 1), {path_, "'scalar'", "dim=0", "[]"});
  expect_checkpoint_error(rs("m", 0, 3, 2, 0), {path_, "[3, 2) along dim 0"});
  expect_checkpoint_error(rs("m", 1, 0, 6, 96), {path_, "[0, 6) along dim 1", "<= 5"});
  expect_checkpoint_error(rs("m", 0, -1, 2, 60), {path_, "[-1, 2) along dim 0"});
  expect_checkpoint_error(rs("m", 0, 0, 2, 36), {path_, "dst_bytes=36", "40 bytes"});
  expect_checkpoint_error(rs("nope", 0, 0, 1, 4), {path_, "'nope'", "not found"});
  expect_checkpoint_error([&] { ck.read("m", buf.data(), 4); }, {path_, "'m'", "dst_bytes=4", "80 bytes"});
  expect_checkpoint_error([&] { ck.read_slice("m", 0, 0, 1, nullptr, 20); }, {path_, "dst=null"});
  EXPECT_EQ(ck.bytes_read(), 0u);
}

TEST_F(SafetensorsTest, MissingTensorViaInfo) {
  float x = 1;
  const std::string p = file("one.safetensors");
  write_safetensors(p, {{"a", DType::F32, {}, &x}});
  Checkpoint ck = Checkpoint::open(p);
  EXPECT_TRUE(ck.has("a"));
  EXPECT_FALSE(ck.has("model.embed_tokens.weight"));
  expect_checkpoint_error([&] { ck.info("model.embed_tokens.weight"); },
                          {p, "'model.embed_tokens.weight'", "not found"});
}

// ---- checkpoints: directory layouts ---------------------------------------------------------

TEST_F(SafetensorsTest, ShardedIndexAcrossTwoFiles) {
  std::vector<float> a(6), b(4), extra(2);
  std::iota(a.begin(), a.end(), 0.f);
  std::iota(b.begin(), b.end(), 100.f);
  write_safetensors(file("model-00001-of-00002.safetensors"), {{"layer.0.w", DType::F32, {2, 3}, a.data()}},
                    {{"format", "pt"}});
  // The second shard also holds a tensor the index does not list: allowed, and not exposed.
  write_safetensors(file("model-00002-of-00002.safetensors"),
                    {{"layer.1.w", DType::F32, {4}, b.data()}, {"stray", DType::F32, {2}, extra.data()}},
                    {{"shard", "2"}});
  write_bytes("model.safetensors.index.json",
              R"({"metadata": {"total_size": 40}, "weight_map": {
                   "layer.0.w": "model-00001-of-00002.safetensors",
                   "layer.1.w": "model-00002-of-00002.safetensors"}})");
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(ck.path(), dir_);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"layer.0.w", "layer.1.w"}));
  EXPECT_FALSE(ck.has("stray"));
  EXPECT_EQ(ck.info("layer.0.w").file, file("model-00001-of-00002.safetensors"));
  EXPECT_EQ(ck.info("layer.1.w").file, file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(ck.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"shard", "2"}}));
  std::vector<float> got_b(4), got_col(2);
  ck.read("layer.1.w", got_b.data(), 16);
  EXPECT_EQ(got_b, b);
  ck.read_slice("layer.0.w", 1, 2, 3, got_col.data(), 8);
  EXPECT_EQ(got_col, (std::vector<float>{2.f, 5.f}));
  EXPECT_EQ(ck.bytes_read(), 24u);
}

TEST_F(SafetensorsTest, DirectoryWithSingleModelFile) {
  float x[2] = {1, 2};
  write_safetensors(file("model.safetensors"), {{"w", DType::F32, {2}, x}});
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(ck.names(), std::vector<std::string>{"w"});
}

TEST_F(SafetensorsTest, DirectoryWithNeitherFile) {
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {dir_, "model.safetensors.index.json", "model.safetensors"});
  expect_checkpoint_error([&] { Checkpoint::open(dir_ + "/nonexistent"); }, {dir_ + "/nonexistent", "no such file"});
}

TEST_F(SafetensorsTest, IndexNamingMissingFile) {
  float x = 0;
  write_safetensors(file("model-00001-of-00002.safetensors"), {{"a", DType::F32, {}, &x}});
  const std::string idx = write_bytes("model.safetensors.index.json",
      R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); },
                          {idx, "weight_map.b", "model-00002-of-00002.safetensors", "does not exist"});
}

TEST_F(SafetensorsTest, IndexNamingFileWithoutTheTensor) {
  float x = 0;
  write_safetensors(file("shard.safetensors"), {{"a", DType::F32, {}, &x}});
  const std::string idx =
      write_bytes("model.safetensors.index.json", R"({"weight_map": {"a": "shard.safetensors", "b": "shard.safetensors"}})");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {idx, "weight_map.b", "shard.safetensors", "not found"});
}

TEST_F(SafetensorsTest, BadIndexFiles) {
  const std::string idx = file("model.safetensors.index.json");
  write_bytes("model.safetensors.index.json", R"({"metadata": {}})");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {idx, "weight_map", "missing"});
  write_bytes("model.safetensors.index.json", R"({"weight_map": ["a"]})");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {idx, "weight_map", "[\"a\"]"});
  write_bytes("model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {idx, "weight_map.a", "3"});
  write_bytes("model.safetensors.index.json", R"({"weight_map": {"a": "x", "a": "y"}})");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {idx, "/weight_map/a", "duplicate"});
  write_bytes("model.safetensors.index.json", R"({"weight_map": )");
  expect_checkpoint_error([&] { Checkpoint::open(dir_); }, {idx, "invalid JSON"});
}

// ---- malformed files --------------------------------------------------------------------------

TEST_F(SafetensorsTest, TruncatedFiles) {
  expect_open_error(write_bytes("empty.safetensors", ""), {"header_length", "0 bytes", "too short"});
  expect_open_error(write_bytes("seven.safetensors", std::string(7, '\0')), {"header_length", "7 bytes", "too short"});
  // A valid file cut short inside the data section.
  float x[4] = {1, 2, 3, 4};
  const std::string p = file("full.safetensors");
  write_safetensors(p, {{"w", DType::F32, {4}, x}});
  std::string raw = read_all(p);
  expect_open_error(write_bytes("cut.safetensors", raw.substr(0, raw.size() - 3)),
                    {"w.data_offsets", "[0,16]", "past end of data section"});
  // Every truncation of a valid file is rejected with a CheckpointError (never a crash).
  for (size_t n = 0; n < raw.size(); ++n) {
    const std::string q = write_bytes("t.safetensors", raw.substr(0, n));
    EXPECT_THROW(SafetensorsFile f(q), CheckpointError) << "length " << n;
  }
}

TEST_F(SafetensorsTest, HeaderLengthPastEndOfFile) {
  const std::string h = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_open_error(write_raw("past.safetensors", h, "abcd", h.size() + 5), {"header_length", std::to_string(h.size() + 5), "past end of file"});
  expect_open_error(write_raw("huge.safetensors", h, "abcd", ~uint64_t(0)),
                    {"header_length", "18446744073709551615", "limit"});
}

TEST_F(SafetensorsTest, HeaderLengthZero) {
  expect_open_error(write_raw("zero.safetensors", "", "abcd"), {"header_length", "0", "empty header"});
}

TEST_F(SafetensorsTest, HeaderOver100MB) {
  // A sparse file large enough to hold the claimed header, so only the size limit is violated.
  const uint64_t n = 100'000'001;
  const std::string p = write_raw("big.safetensors", "{", "", n);
  ASSERT_EQ(truncate(p.c_str(), off_t(8 + n)), 0);
  expect_open_error(p, {"header_length", "100000001", "limit"});
}

TEST_F(SafetensorsTest, InvalidJson) {
  expect_open_error(write_raw("j.safetensors", R"({"w":{"dtype":"F32",)"), {"invalid JSON"});
  expect_open_error(write_raw("arr.safetensors", "[1,2]"), {"header", "[1,2]", "not a JSON object"});
  expect_open_error(write_raw("str.safetensors", R"({"w": 3})"), {"'w'", "3", "must be an object"});
}

TEST_F(SafetensorsTest, InvalidUtf8) {
  std::string h = "{\"w\xff\xfe\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}";
  expect_open_error(write_raw("u.safetensors", h), {"header", "byte 3", "0xff", "UTF-8"});
  // Encoded surrogate (ED A0 80) and overlong '/' (C0 AF) are invalid too.
  expect_open_error(write_raw("s.safetensors", "{\"\xed\xa0\x80\":1}"), {"byte 2", "0xed", "UTF-8"});
  expect_open_error(write_raw("o.safetensors", "{\"\xc0\xaf\":1}"), {"byte 2", "0xc0", "UTF-8"});
  // Valid multi-byte names are accepted.
  std::string ok = "{\"w\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  SafetensorsFile f(write_raw("ok.safetensors", ok, "x"));
  EXPECT_EQ(f.tensors().size(), 1u);
}

TEST_F(SafetensorsTest, DuplicateTensorName) {
  std::string h = R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                  R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
  expect_open_error(write_raw("dup.safetensors", h, "xy"), {"'w'", "duplicate tensor name"});
}

TEST_F(SafetensorsTest, UnknownDtype) {
  std::string h = R"({"model.layers.0.mlp.gate.weight":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("dt.safetensors", h, "x"), {"model.layers.0.mlp.gate.weight.dtype", "\"F4\"", "unknown dtype"});
  h = R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("dt2.safetensors", h, "x"), {"w.dtype", "4", "must be a string"});
  h = R"({"w":{"shape":[2],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("dt3.safetensors", h, "x"), {"w.dtype", "missing"});
}

TEST_F(SafetensorsTest, BadShapes) {
  std::string h = R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("a.safetensors", h, "x"), {"w.shape", "[-1]", "non-negative"});
  h = R"({"w":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("b.safetensors", h, "x"), {"w.shape", "[1.0]", "non-negative"});
  h = R"({"w":{"dtype":"U8","shape":"1","data_offsets":[0,1]}})";
  expect_open_error(write_raw("c.safetensors", h, "x"), {"w.shape", "\"1\""});
  h = R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("d.safetensors", h, "x"), {"w.shape", "4294967296", "overflow"});
  h = R"({"w":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("e.safetensors", h, "x"), {"w.shape", "non-negative"});
}

TEST_F(SafetensorsTest, BadOffsetValues) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[-1,0]", "[-1,0]"}, {"[0.0,1.0]", "[0.0,1.0]"}, {"[0]", "[0]"}, {"[0,1,2]", "[0,1,2]"},
      {"\"0,1\"", "\"0,1\""}, {"[1,0]", "begin is greater than end"}};
  int i = 0;
  for (const auto& [offs, needle] : cases) {
    std::string h = R"({"w":{"dtype":"U8","shape":[1],"data_offsets":)" + offs + "}}";
    expect_open_error(write_raw("o" + std::to_string(i++) + ".safetensors", h, "x"), {"w.data_offsets", needle});
  }
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                  R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  expect_open_error(write_raw("ov.safetensors", h, std::string(24, 'x')), {"b.data_offsets", "[8, 24)", "overlaps tensor 'a'"});
}

TEST_F(SafetensorsTest, GapBetweenOffsets) {
  std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                  R"("b":{"dtype":"F32","shape":[4],"data_offsets":[24,40]}})";
  expect_open_error(write_raw("gap.safetensors", h, std::string(40, 'x')), {"b.data_offsets", "[24, 40)", "gap of 8 bytes"});
  // First tensor not at 0.
  h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_open_error(write_raw("gap0.safetensors", h, std::string(8, 'x')), {"a.data_offsets", "[4, 8)", "gap of 4 bytes"});
}

TEST_F(SafetensorsTest, DataSectionNotFullyCovered) {
  std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  expect_open_error(write_raw("cov.safetensors", h, std::string(20, 'x')),
                    {"data_section", "[0, 16) of 20 bytes", "not fully covered"});
}

TEST_F(SafetensorsTest, ByteLengthMismatch) {
  std::string h = R"({"model.layers.0.mlp.gate.weight":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,10]}})";
  expect_open_error(write_raw("len.safetensors", h, std::string(10, 'x')),
                    {"model.layers.0.mlp.gate.weight.data_offsets", "[0,10]", "byte length 10", "[2, 3]", "12"});
}

TEST_F(SafetensorsTest, MetadataMustBeStringToString) {
  std::string h = R"({"__metadata__":{"format":"pt","step":3},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("m1.safetensors", h, "x"), {"__metadata__.step", "3", "must be strings"});
  h = R"({"__metadata__":["pt"],"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  expect_open_error(write_raw("m2.safetensors", h, "x"), {"__metadata__", "[\"pt\"]", "object"});
}

TEST_F(SafetensorsTest, RandomCorruptionNeverCrashes) {
  // Flip random header/data bytes of a valid file: each variant either opens (and then reads
  // stay inside the mapping) or throws CheckpointError.
  std::vector<uint8_t> d = pattern_bytes(96, 9);
  const std::string p = file("base.safetensors");
  write_safetensors(p, {{"a", DType::F32, {2, 4}, d.data()}, {"b", DType::I64, {8}, d.data() + 32}}, {{"k", "v"}});
  const std::string raw = read_all(p);
  std::mt19937 rng(1234);
  int opened = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::string bad = raw;
    int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = char(rng());
    const std::string q = write_bytes("fuzz.safetensors", bad);
    try {
      Checkpoint ck = Checkpoint::open(q);
      for (const auto& n : ck.names()) {
        std::vector<uint8_t> buf(ck.info(n).nbytes());
        ck.read(n, buf.data(), buf.size());
      }
      ++opened;
    } catch (const CheckpointError&) {
    }
  }
  EXPECT_GT(opened, 0);  // flips inside the data section leave a valid file
}

}  // namespace
}  // namespace sc
