// Runs the built `shardcheck` (SC_CLI, set by tests/CMakeLists.txt) as a user would, through the
// shell: one helper for every test that checks the CLI's output and exit code.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace sctest {

struct CliOut {
  int code = -1;    // exit status (-1: did not exit normally)
  std::string out;  // stdout (with stderr appended unless separated)
  std::string err;  // stderr when separated
};

// `shardcheck ARGS`; stderr goes into out unless separate_stderr.
inline CliOut run_cli(const std::string& args, bool separate_stderr = false) {
  // The pid keeps the stderr files of tests that CTest runs in parallel processes apart (a count
  // alone collided: two processes' first calls shared one file and one read the other's, or none).
  static int calls = 0;
  const std::string errfile = ::testing::TempDir() + "/sc_cli_stderr_" + std::to_string(getpid()) + "_" +
                              std::to_string(++calls) + ".txt";
  const std::string cmd = std::string(SC_CLI) + " " + args + (separate_stderr ? " 2>" + errfile : " 2>&1");
  CliOut o;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
  const int st = pclose(p);
  o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (separate_stderr) {
    std::ifstream f(errfile);
    std::stringstream ss;
    ss << f.rdbuf();
    o.err = ss.str();
    std::remove(errfile.c_str());
  }
  return o;
}

}  // namespace sctest
