// GGUF reader (models/gguf.h): files built byte by byte here, values checked exactly, and every
// malformed-file rule checked for its message.
#include "models/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "models/errors.h"

namespace {

// Little-endian byte builder, independent of steering/export.cpp's writer.
struct B {
  std::string b;
  B& u8(uint8_t v) { b.push_back(char(v)); return *this; }
  B& u16(uint16_t v) { return u8(v & 0xff).u8(v >> 8); }
  B& u32(uint32_t v) { for (int i = 0; i < 4; ++i) u8((v >> (8 * i)) & 0xff); return *this; }
  B& u64(uint64_t v) { for (int i = 0; i < 8; ++i) u8((v >> (8 * i)) & 0xff); return *this; }
  B& f32(float f) { uint32_t x; std::memcpy(&x, &f, 4); return u32(x); }
  B& str(const std::string& s) { u64(s.size()); b += s; return *this; }
  B& pad(size_t a) { while (b.size() % a) b.push_back(0); return *this; }
  B& head(uint32_t version, uint64_t tensors, uint64_t kvs) { b = "GGUF"; return u32(version).u64(tensors).u64(kvs); }
};

std::string err(const std::string& bytes) {
  try {
    sc::GgufFile::parse(bytes, "x.gguf");
  } catch (const sc::CheckpointError& e) {
    return e.what();
  }
  return "(no error)";
}

// Two metadata entries and a tensor, as the control-vector writer lays them out.
B one_tensor_file(uint64_t offset = 0, uint64_t dim = 4, bool data = true) {
  B f;
  f.head(3, 1, 2).str("general.architecture").u32(8).str("controlvector");
  f.str("controlvector.layer_count").u32(5).u32(7);
  f.str("direction.7").u32(1).u64(dim).u32(0).u64(offset);
  f.pad(32);
  if (data) f.f32(1.5f).f32(-2).f32(0).f32(3.25f);
  return f;
}

TEST(Gguf, ReadsMetadataTensorsAndValues) {
  B f;
  f.head(3, 2, 5);
  f.str("general.architecture").u32(8).str("controlvector");
  f.str("a.u8").u32(0).u8(200);
  f.str("a.i64").u32(11).u64(uint64_t(-5));
  f.str("a.arr").u32(9).u32(5).u64(3).u32(1).u32(uint32_t(-2)).u32(3);
  f.str("a.strs").u32(9).u32(8).u64(2).str("x").str("");
  f.str("v").u32(1).u64(2).u32(0).u64(0);                 // f32 [2]: 8 bytes, padded to 32
  f.str("h").u32(2).u64(3).u64(2).u32(1).u64(32);         // f16 [3, 2]: 12 bytes
  f.pad(32);
  const size_t data_at = f.b.size();
  f.f32(0.25f).f32(-7).pad(32);
  for (uint16_t h : {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000}) f.u16(h);
  const sc::GgufFile g = sc::GgufFile::parse(f.b, "t.gguf");
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.data_offset(), data_at);
  ASSERT_EQ(g.keys().size(), 5u);
  EXPECT_EQ(g.keys()[3], "a.arr");
  EXPECT_EQ(g.find("general.architecture")->s, "controlvector");
  EXPECT_EQ(g.find("a.u8")->u, 200u);
  int64_t v = 0;
  EXPECT_TRUE(g.find("a.i64")->as_int64(&v));
  EXPECT_EQ(v, -5);
  const sc::GgufValue* arr = g.find("a.arr");
  ASSERT_EQ(arr->array.size(), 3u);
  EXPECT_EQ(arr->elem, sc::GgufType::I32);
  EXPECT_EQ(arr->array[1].i, -2);
  EXPECT_EQ(g.find("a.strs")->array[0].s, "x");
  EXPECT_EQ(g.find("a.strs")->array[1].s, "");
  EXPECT_EQ(g.find("missing"), nullptr);
  ASSERT_EQ(g.tensors().size(), 2u);
  EXPECT_EQ(g.tensor("h")->dims, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(g.tensor("h")->nbytes, 12u);
  EXPECT_EQ(g.tensor("h")->numel(), 6);
  EXPECT_EQ(g.tensor_f32("v"), (std::vector<float>{0.25f, -7.f}));
  const auto h = g.tensor_f32("h");
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 0.5f);
  EXPECT_EQ(h[3], 65504.0f);
  EXPECT_EQ(h[4], std::ldexp(1.0f, -24));  // smallest f16 subnormal
  EXPECT_TRUE(std::signbit(h[5]));
}

TEST(Gguf, CustomAlignmentAndQuantisedSizes) {
  B f;
  f.head(2, 2, 1).str("general.alignment").u32(4).u32(64);
  f.str("q").u32(2).u64(64).u64(2).u32(8).u64(0);  // q8_0: 2 blocks per row x 2 rows x 34 bytes = 136
  f.str("z").u32(1).u64(4).u32(0).u64(192);        // 136 padded to 64 -> 192
  f.pad(64);
  f.b.append(192 + 16, '\0');
  const sc::GgufFile g = sc::GgufFile::parse(f.b, "q.gguf");
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.tensor("q")->nbytes, 136u);
  EXPECT_EQ(std::string(sc::ggml_type_name(8)), "q8_0");
  EXPECT_EQ(sc::GgufFile::parse(f.b, "q.gguf").data_offset() % 64, 0u);
  // One byte short of z's data.
  EXPECT_EQ(err(f.b.substr(0, f.b.size() - 1)),
            "checkpoint error: x.gguf: key 'z' = data [192, 208): extends past the end of the file (data section of 207 "
            "bytes; file truncated?)");
}

TEST(Gguf, MalformedFilesNameKeyAndValue) {
  EXPECT_EQ(one_tensor_file().b.size() % 32, 16u);
  EXPECT_EQ(err(one_tensor_file().b), "(no error)");
  EXPECT_EQ(err("GGML"), "checkpoint error: x.gguf: key 'magic' = GGML: not a GGUF file (expected the magic \"GGUF\")");
  EXPECT_EQ(err(B().head(1, 0, 0).b), "checkpoint error: x.gguf: key 'version' = 1: unsupported GGUF version (expected 2 or 3)");
  EXPECT_EQ(err(std::string("GGUF\x03\0\0", 7)),
            "checkpoint error: x.gguf: key 'version' = offset 4: file truncated: needs 4 bytes, 3 left");
  EXPECT_EQ(err(B().head(3, 0, 1).str("k").u32(13).b),
            "checkpoint error: x.gguf: key 'k' = type 13: unknown GGUF value type (expected 0..12)");
  EXPECT_EQ(err(B().head(3, 0, 1).u64(1000).b + "0123456789"),
            "checkpoint error: x.gguf: key 'metadata entry 0 key' = string length 1000: longer than the 10 bytes left in the file");
  EXPECT_EQ(err(B().head(3, 0, 1000).b),
            "checkpoint error: x.gguf: key 'metadata_kv_count' = 1000: more entries than the file can hold");
  EXPECT_EQ(err(B().head(3, 0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2).b),
            "checkpoint error: x.gguf: key 'k': duplicate metadata key");
  EXPECT_EQ(err(B().head(3, 0, 1).str("k").u32(7).u8(2).b), "checkpoint error: x.gguf: key 'k' = 2: bool must be 0 or 1");
  EXPECT_EQ(err(B().head(3, 0, 1).str("k").u32(9).u32(9).b),
            "checkpoint error: x.gguf: key 'k' = array of arrays: nested arrays are not supported");
  EXPECT_EQ(err(B().head(3, 0, 1).str("k").u32(9).u32(8).u64(uint64_t(1) << 60).u64(0).b),
            "checkpoint error: x.gguf: key 'k' = array of 1152921504606846976 string: does not fit in the 8 bytes left in the file");
  EXPECT_EQ(err(B().head(3, 0, 1).str("general.alignment").u32(4).u32(48).b),
            "checkpoint error: x.gguf: key 'general.alignment' = 48: must be a power of two");
  EXPECT_EQ(err(B().head(3, 0, 1).str("general.alignment").u32(10).u64(32).b),
            "checkpoint error: x.gguf: key 'general.alignment' = uint64: must be a uint32");
  EXPECT_EQ(err(one_tensor_file(32).b),
            "checkpoint error: x.gguf: key 'direction.7.offset' = 32: expected 0 (tensors are stored in order, each padded to 32 bytes)");
  EXPECT_EQ(err(one_tensor_file(0, 4, false).b),
            "checkpoint error: x.gguf: key 'direction.7' = data [0, 16): extends past the end of the file (data section of 0 "
            "bytes; file truncated?)");
  B five_dims;
  five_dims.head(3, 1, 0).str("t").u32(5).b.append(64, '\0');
  EXPECT_EQ(err(five_dims.b), "checkpoint error: x.gguf: key 't.n_dims' = 5: must be 1 to 4");
  B big;
  big.head(3, 1, 0).str("t").u32(3).u64(uint64_t(1) << 32).u64(uint64_t(1) << 32).u64(2).u32(0).u64(0);
  EXPECT_EQ(err(big.b), "checkpoint error: x.gguf: key 't.dims' = [4294967296, 4294967296, ...]: element count overflows int64");
  B q;
  q.head(3, 1, 0).str("t").u32(1).u64(33).u32(8).u64(0).b.append(64, '\0');
  EXPECT_EQ(err(q.b), "checkpoint error: x.gguf: key 't.dims' = [33]: row of 33 elements is not a whole number of q8_0 blocks of 32");
  B unk;
  unk.head(3, 1, 0).str("t").u32(1).u64(4).u32(4).u64(0).b.append(64, '\0');
  EXPECT_EQ(err(unk.b), "checkpoint error: x.gguf: key 't.type' = 4: unknown or unsupported ggml type");
  B dup;
  dup.head(3, 2, 0).str("t").u32(1).u64(4).u32(0).u64(0).str("t").u32(1).u64(4).u32(0).u64(32).b.append(64, '\0');
  EXPECT_EQ(err(dup.b), "checkpoint error: x.gguf: key 't': duplicate tensor name");
  EXPECT_EQ(err(B().head(3, uint64_t(1) << 40, 0).b),
            "checkpoint error: x.gguf: key 'tensor_count' = 1099511627776: more tensor infos than the file can hold");
  // Non-printable bytes in a key are escaped in the message.
  EXPECT_EQ(err(B().head(3, 0, 1).str(std::string("a\nb", 3)).u32(13).b),
            "checkpoint error: x.gguf: key 'a\\x0ab' = type 13: unknown GGUF value type (expected 0..12)");
}

TEST(Gguf, ReadFromDiskAndTypeErrors) {
  EXPECT_THROW(sc::GgufFile::read("/nonexistent/x.gguf"), sc::CheckpointError);
  B f;
  f.head(3, 1, 0).str("q").u32(1).u64(32).u32(8).u64(0).pad(32).b.append(34, '\0');
  const sc::GgufFile g = sc::GgufFile::parse(f.b, "q.gguf");
  try {
    g.tensor_f32("q");
    FAIL() << "no error";
  } catch (const sc::CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()), "checkpoint error: q.gguf: key 'q' = q8_0: only f32, f16 and bf16 tensors convert to float");
  }
  EXPECT_THROW(g.tensor_f32("nope"), sc::CheckpointError);
}

}  // namespace
