// Hardening (issue #11): atomic outputs survive a killed writer and a failing disk; parser fixes
// the fuzzers led to; the CLI's error contract for outputs.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <functional>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli_runner.h"

#include "models/atomic_file.h"
#include "models/config.h"
#include "models/errors.h"
#include "models/json_util.h"
#include "models/safetensors.h"
#include "models/tokenizer.h"

namespace {

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/sc-hardening-" + name + "-" + std::to_string(::getpid());
  std::system(("rm -rf '" + d + "'").c_str());
  ::mkdir(d.c_str(), 0755);
  return d;
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::vector<std::string> list_dir(const std::string& d) {
  std::vector<std::string> out;
  if (DIR* dir = ::opendir(d.c_str())) {
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    ::closedir(dir);
  }
  return out;
}

// Version v of the output: `size` bytes of the letter, so a partial or mixed file is evident.
std::string version(char letter, size_t size) { return std::string(size, letter); }

bool is_whole_version(const std::string& s, size_t size) {
  if (s.size() != size) return false;
  return s.find_first_not_of(s[0]) == std::string::npos;
}

// A child rewrites the file in a loop (alternating contents); the parent SIGKILLs it at a varying
// moment. The target must always be a whole version (the old one or a new one), never partial;
// at least some kills must land mid-write (a temporary file left behind), else the test proved nothing.
TEST(AtomicFile, KilledWriterLeavesOldOrNewFileNeverPartial) {
  const std::string dir = fresh_dir("kill");
  const std::string target = dir + "/report.json";
  const size_t size = 4 << 20;
  sc::write_file_atomic(target, version('O', size));
  int mid_write = 0, rounds = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0;; ++i) {
        try {
          sc::write_file_atomic(target, version(i % 2 ? 'A' : 'B', size));
        } catch (...) {
          ::_exit(3);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3 + 7 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer ended by itself, status " << status;
    ++rounds;
    std::string got;
    ASSERT_TRUE(read_file(target, &got)) << "target missing after kill in round " << round;
    EXPECT_TRUE(is_whole_version(got, size)) << "round " << round << ": partial or mixed file of " << got.size()
                                             << " bytes";
    for (const auto& f : list_dir(dir)) {
      if (f == "report.json") continue;
      EXPECT_EQ(f.rfind("report.json.tmp.", 0), 0u) << f;
      ++mid_write;
      ::unlink((dir + "/" + f).c_str());
    }
  }
  std::printf("[ kills    ] %d rounds, %d killed mid-write\n", rounds, mid_write);
  EXPECT_GT(mid_write, 0);
  std::system(("rm -rf '" + dir + "'").c_str());
}

// A write that fails (file size limit: what a full disk does to write(2)) raises OutputError naming
// the file, keeps the old content and leaves no temporary file. Run in a child: the limit is
// process-wide.
TEST(AtomicFile, FailedWriteKeepsOldFileAndLeavesNoTemp) {
  const std::string dir = fresh_dir("full");
  const std::string target = dir + "/vectors.safetensors";
  sc::write_file_atomic(target, "old contents");
  const std::string msg_file = dir + "/../sc-hardening-msg-" + std::to_string(::getpid());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // write(2) then fails with EFBIG instead of killing the process
    rlimit lim{1 << 16, 1 << 16};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    int code = 1;
    std::string what = "(no error)";
    try {
      sc::write_file_atomic(target, std::string(1 << 20, 'x'));
    } catch (const sc::OutputError& e) {
      what = e.what();
      code = 0;
    } catch (...) {
      code = 2;
    }
    std::ofstream(msg_file) << what;
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::string msg, got;
  ASSERT_TRUE(read_file(msg_file, &msg));
  ::unlink(msg_file.c_str());
  EXPECT_EQ(msg, "output error: " + target + ": write failed: File too large");
  ASSERT_TRUE(read_file(target, &got));
  EXPECT_EQ(got, "old contents");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"vectors.safetensors"});
  // A missing folder: OutputError, nothing created.
  try {
    sc::write_file_atomic(dir + "/no/such/dir/x.xml", "x");
    FAIL() << "no error";
  } catch (const sc::OutputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "output error: " + dir + "/no/such/dir/x.xml: cannot create temporary file: No such file or directory");
  }
  std::system(("rm -rf '" + dir + "'").c_str());
}

// The CLI: an output that cannot be written is exit 2 with one line, and no file appears.
TEST(AtomicFile, CliOutputErrorIsExit2OneLine) {
  const std::string dir = fresh_dir("cli");
  const std::string out = dir + "/missing/report.md";
  const std::string cmd = std::string(SC_CLI) + " report " + SC_FIXTURES + "/configs/qwen3-30b-a3b/config.json --gpus 8 --md " +
                          out + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) text.append(buf.data(), n);
  const int st = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 2) << text;
  const std::string want = "output error: " + out + ": cannot create temporary file: No such file or directory\n";
  ASSERT_GE(text.size(), want.size()) << text;
  EXPECT_EQ(text.substr(text.size() - want.size()), want) << text;
  EXPECT_TRUE(list_dir(dir).empty());
  std::system(("rm -rf '" + dir + "'").c_str());
}

// Found by fuzz_config: per-key limits kept each layer inside int64 but not the sum over layers.
TEST(FuzzRegression, ConfigTotalParamsCannotOverflow) {
  std::string text;
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/config/regress-total-params-overflow", &text));
  try {
    sc::ModelConfig::from_json_text(text, "config.json");
    FAIL() << "no error";
  } catch (const sc::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "config error: config.json: key 'num_hidden_layers' = 16384: the model would have about 1.18e+21 "
              "parameters, more than the 2^50 this tool supports (check hidden_size, head counts and layer count)");
  }
  // The largest real model stays far below the bound.
  EXPECT_NO_THROW(sc::configs::qwen3_coder_480b_a35b().validate());
}

std::string input_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sc::InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// Found by fuzz_config: a JSON key holding a newline made the error message two lines.
TEST(FuzzRegression, ErrorMessagesStayOneLine) {
  std::string text;
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/config/regress-newline-in-key", &text));
  EXPECT_EQ(input_error_of([&] { sc::ModelConfig::from_json_text(text, "config.json"); }),
            "config error: config.json: key '/\\ntermediate_size': duplicate key in JSON object");
  EXPECT_EQ(sc::ConfigError("a\tb.json", "k\x01", "v\r", "bad\x7f").what(),
            std::string("config error: a\\tb.json: key 'k\\x01' = v\\r: bad\\x7f"));
  EXPECT_EQ(sc::ConfigError("a\tb.json", "k", "", "").key(), "k");  // fields keep the raw text
}

// Found by fuzz_config: a number too large for a double is an InputError like any invalid JSON.
TEST(FuzzRegression, NumberOverflowIsInvalidJson) {
  std::string text;
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/config/regress-number-overflow", &text));
  EXPECT_EQ(input_error_of([&] { sc::ModelConfig::from_json_text(text, "config.json"); }),
            "config error: config.json: invalid JSON: number overflow parsing '1048E576'");
}

// Found by fuzz_tokenizer (out of memory): a token id of 10^9 in a 4 kB file.
TEST(FuzzRegression, TokenIdsMustStayDense) {
  std::string text;
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/tokenizer/regress-huge-token-id", &text));
  EXPECT_EQ(input_error_of([&] { sc::Tokenizer::from_json_text(text.substr(0, text.find('\0')), "tokenizer.json"); }),
            "tokenizer error: tokenizer.json: key '/model/vocab' = 1045555555: token id above the supported maximum of "
            "16777215");
  std::string seed;
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/tokenizer/seed-qwen-shape", &seed));
  seed = seed.substr(0, seed.find('\0'));
  const std::string sparse = std::string(seed).replace(seed.find("\"id\": 304"), 9, "\"id\": 70000");
  EXPECT_EQ(input_error_of([&] { sc::Tokenizer::from_json_text(sparse, "tokenizer.json"); }),
            "tokenizer error: tokenizer.json: key '/added_tokens/4/id' = 70000: token ids are too sparse: id 70000 for "
            "272 tokens (ids must stay below 2 x tokens + 65536)");
  const std::string fine = std::string(seed).replace(seed.find("\"id\": 304"), 9, "\"id\": 60000");
  EXPECT_EQ(input_error_of([&] { sc::Tokenizer::from_json_text(fine, "tokenizer.json"); }), "(no error)");
}

// An index entry may not leave the checkpoint folder through "..".
TEST(FuzzRegression, IndexFileCannotEscapeTheCheckpoint) {
  const std::string dir = fresh_dir("index");
  const float x[2] = {1, 2};
  sc::write_safetensors(dir + "/a.safetensors", {{"x", sc::DType::F32, {2}, x}});
  ::mkdir((dir + "/ck").c_str(), 0755);
  sc::write_safetensors(dir + "/ck/b.safetensors", {{"x", sc::DType::F32, {2}, x}});
  for (const std::string rel : {"../a.safetensors", "sub/../../a.safetensors", ".."}) {
    sc::write_file_atomic(dir + "/ck/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"" + rel + "\"}}");
    try {
      sc::Checkpoint::open(dir + "/ck");
      FAIL() << rel;
    } catch (const sc::CheckpointError& e) {
      EXPECT_EQ(std::string(e.what()), "checkpoint error: " + dir + "/ck/model.safetensors.index.json: key 'weight_map.x' = \"" +
                                           rel + "\": file must be a relative path inside the checkpoint");
    }
  }
  // Names merely containing dots are fine.
  sc::write_file_atomic(dir + "/ck/model.safetensors.index.json", R"({"weight_map": {"x": "./b.safetensors"}})");
  EXPECT_TRUE(sc::Checkpoint::open(dir + "/ck").has("x"));
  std::system(("rm -rf '" + dir + "'").c_str());
}

// ---- Issue #22: bounded JSON inputs and flags, each one line on stderr and exit 2 ----

// `shardcheck ARGS` with stderr apart: exit code and the whole of stderr.
std::pair<int, std::string> cli_err(const std::string& args) {
  const sctest::CliOut o = sctest::run_cli(args, /*separate_stderr=*/true);
  return {o.code, o.err};
}

std::string cfg32() { return std::string(SC_FIXTURES) + "/configs/qwen3-32b/config.json"; }

// A config nested 10^5 deep (200 kB) took 45 s and 10 GB in the duplicate-key tracker: now the
// parser stops at the 257th level, in milliseconds. The tokenizer's own reader has the same bound.
TEST(JsonBounds, NestingDeeperThanTheLimitIsRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(input_error_of([&] { sc::ModelConfig::from_json_text(deep, "deep.json"); }),
            "config error: deep.json: JSON nested deeper than 256 levels (the limit for input files)");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  EXPECT_EQ(input_error_of([&] { sc::Tokenizer::from_json_text("{\"a\":" + deep + "}", "tokenizer.json"); }),
            "tokenizer error: tokenizer.json: JSON nested deeper than 256 levels (the limit for input files)");
  // 256 levels are fine (the error is then about the content, not the depth).
  const std::string at_limit = std::string(256, '[') + std::string(256, ']');
  EXPECT_EQ(input_error_of([&] { sc::ModelConfig::from_json_text(at_limit, "ok.json"); }),
            "config error: ok.json: value " + std::string(77, '[') + "...: config must be a JSON object");
  std::string obj;
  for (int i = 0; i < 257; ++i) obj += "{\"k\":";
  obj += "1" + std::string(257, '}');
  EXPECT_EQ(input_error_of([&] { sc::parse_json_strict(obj, "o.json", sc::InputKind::Dataset); }),
            "dataset error: o.json: JSON nested deeper than 256 levels (the limit for input files)");
}

// The corpora's regression inputs of this bound (fixtures/fuzz/*/regress-deep-nesting).
TEST(JsonBounds, CorpusInputsHitTheDepthLimit) {
  std::string text;
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/config/regress-deep-nesting", &text));
  EXPECT_EQ(input_error_of([&] { sc::ModelConfig::from_json_text(text, "config.json"); }),
            "config error: config.json: JSON nested deeper than 256 levels (the limit for input files)");
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/tokenizer/regress-deep-nesting", &text));
  EXPECT_EQ(input_error_of([&] { sc::Tokenizer::from_json_text(text, "tokenizer.json"); }),
            "tokenizer error: tokenizer.json: JSON nested deeper than 256 levels (the limit for input files)");
  ASSERT_TRUE(read_file(std::string(SC_FIXTURES) + "/fuzz/config/regress-rope-type-not-string", &text));
  EXPECT_EQ(input_error_of([&] { sc::ModelConfig::from_json_text(text, "config.json"); }),
            "config error: config.json: key 'rope_scaling.rope_type' = 5: must be a string, not a number");
}

// Files: a directory, a device, a file over 64 MiB (sparse: no disk used) are refused before any
// read; a pipe is read (bounded). Through the CLI as a user would hit them.
TEST(JsonBounds, OnlyRegularFilesUpToTheLimitAreRead) {
  const std::string dir = fresh_dir("bounds");
  const std::string big = dir + "/config.json";
  { std::ofstream(big) << ""; }
  ASSERT_EQ(::truncate(big.c_str(), off_t(sc::kMaxJsonFileBytes) + 1), 0);
  EXPECT_EQ(cli_err("check " + big), std::make_pair(2, "shardcheck: config error: " + big +
                                                           ": file is 67108865 bytes, more than the 64 MiB (67108864 "
                                                           "bytes) limit for input files\n"));
  EXPECT_EQ(cli_err("check /dev/zero"),
            std::make_pair(2, std::string("shardcheck: config error: /dev/zero: not a regular file (a device or socket)\n")));
  EXPECT_EQ(cli_err("check " + dir), std::make_pair(2, "shardcheck: config error: " + dir + ": is a directory, not a file\n"));
  EXPECT_EQ(cli_err("report " + cfg32() + " --runs " + dir),
            std::make_pair(2, "shardcheck: usage error: " + dir + ": is a directory, not a file\n"));
  EXPECT_EQ(cli_err("gate " + cfg32() + " --baseline /dev/zero"),
            std::make_pair(2, std::string("shardcheck: usage error: /dev/zero: not a regular file (a device or socket)\n")));
  // A pipe (as bash's <(...) gives) holding a config is read like a file.
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const pid_t writer = ::fork();
  ASSERT_GE(writer, 0);
  if (writer == 0) {
    std::string text;
    read_file(cfg32(), &text);
    std::ofstream(fifo) << text;
    ::_exit(0);
  }
  const sctest::CliOut piped = sctest::run_cli("check " + fifo + " --tp 8", true);
  ::waitpid(writer, nullptr, 0);
  EXPECT_EQ(piped.code, 0) << piped.err;
  EXPECT_NE(piped.out.find("PASS"), std::string::npos) << piped.out;
  // The library call names the limit too; a file at the limit is read.
  ASSERT_EQ(::truncate(big.c_str(), off_t(sc::kMaxJsonFileBytes)), 0);
  EXPECT_EQ(sc::read_text_file(big, sc::InputKind::Config).size(), sc::kMaxJsonFileBytes);
  std::system(("rm -rf '" + dir + "'").c_str());
}

// Flags of check, matrix, gate and report: each bad value is one line naming the flag and value.
TEST(FlagErrors, OneLineUsageOrPlanErrorExitTwo) {
  const std::string c = cfg32();
  const std::string gib = ": must be a finite number of GiB >= 0 (0: memory not checked)\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"check " + c + " --tp ''", "shardcheck: usage error: key '--tp' = \"\": needs a value, not an empty one\n"},
      {"check " + c + " --tp abc", "shardcheck: usage error: key '--tp' = \"abc\": expected an integer\n"},
      {"check " + c + " --gpu-mem -1", "shardcheck: plan error: key '--gpu-mem' = -1" + gib},
      {"check " + c + " --gpu-mem nan", "shardcheck: plan error: key '--gpu-mem' = nan" + gib},
      {"check " + c + " --gpu-mem inf", "shardcheck: plan error: key '--gpu-mem' = inf" + gib},
      {"check " + c + " --gpu-mem 12GiB", "shardcheck: plan error: key '--gpu-mem' = 12GiB" + gib},
      {"matrix " + c + " --gpu-mem 1e400", "shardcheck: plan error: key '--gpu-mem' = 1e400" + gib},
      {"gate " + c + " --gpu-mem -0.5", "shardcheck: plan error: key '--gpu-mem' = -0.5" + gib},
      {"report " + c + " --gpu-mem nan", "shardcheck: plan error: key '--gpu-mem' = nan" + gib},
      {"report " + c + " --html ''", "shardcheck: usage error: key '--html' = \"\": needs a value, not an empty one\n"},
      {"report " + c + " --md ''", "shardcheck: usage error: key '--md' = \"\": needs a value, not an empty one\n"},
      {"gate " + c + " --junit ''", "shardcheck: usage error: key '--junit' = \"\": needs a value, not an empty one\n"},
      {"gate " + c + " --batch x", "shardcheck: usage error: key '--batch' = \"x\": expected an integer\n"},
      {"gate", "shardcheck: usage error: configs is required\n"},
      {"check " + c + " --bogus", "shardcheck: usage error: The following argument was not expected: --bogus\n"},
      // Echoed values are cut to 80 characters with an ellipsis.
      {"check " + c + " --tp " + std::string(200, '7') + "x",
       "shardcheck: usage error: key '--tp' = \"" + std::string(76, '7') + "...: expected an integer\n"},
  };
  for (const auto& [args, want] : cases) EXPECT_EQ(cli_err(args), std::make_pair(2, want)) << args;
  // --help still prints help and exits 0.
  EXPECT_EQ(cli_err("check --help").first, 0);
}

// A --runs file of another schema named the raw nlohmann exception ("[json.exception.out_of_range.403] ...").
TEST(FlagErrors, RunsFileOfTheWrongSchemaIsOneLine) {
  const std::string dir = fresh_dir("runs");
  const std::string runs = dir + "/runs.json";
  std::ofstream(runs) << R"([{"a": 1}])";
  EXPECT_EQ(cli_err("report " + cfg32() + " --runs " + runs),
            std::make_pair(2, "shardcheck: usage error: " + runs +
                                  ": key 'runs[0]' = {\"a\":1}: not a run result (shardcheck run --json): key 'plan' "
                                  "not found\n"));
  std::ofstream(runs) << R"({"runs": [1]})";
  EXPECT_EQ(cli_err("report " + cfg32() + " --runs " + runs),
            std::make_pair(2, "shardcheck: usage error: " + runs +
                                  ": key 'runs[0]' = 1: not a run result (shardcheck run --json): cannot use value() with "
                                  "number\n"));
  std::system(("rm -rf '" + dir + "'").c_str());
}

// Keys and values of any InputError are cut at 80 characters, never inside a UTF-8 character.
TEST(FlagErrors, EchoedKeysAndValuesAreCut) {
  const std::string v = std::string(76, 'a') + "\xc3\xa9" + std::string(50, 'b');  // é at bytes 76-77
  const sc::ConfigError e("f.json", std::string(100, 'k'), v, "bad");
  EXPECT_EQ(std::string(e.what()),
            "config error: f.json: key '" + std::string(77, 'k') + "...' = " + std::string(76, 'a') + "...: bad");
  EXPECT_EQ(e.value(), v);  // the field keeps the raw text
  const std::string fits(80, 'x');
  EXPECT_EQ(std::string(sc::ConfigError("f", "k", fits, "p").what()), "config error: f: key 'k' = " + fits + ": p");
}

}  // namespace
