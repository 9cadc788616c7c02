// Shared by the fuzz targets: the error contract each parser must keep on any input.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "models/errors.h"

namespace sc::fuzz {

// Aborts (a libFuzzer crash) with a message: a property of the parsed result does not hold.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::abort();
}
inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// Runs f. Bad input must surface as an InputError (one line naming file, key and value); any other
// exception escaping a parser is a bug (a crash here), as are crashes, leaks and UB inside it.
// Returns true when f completed.
template <class F>
bool expect_input_error(const char* parser, F&& f) {
  try {
    f();
    return true;
  } catch (const InputError& e) {
    const std::string m = e.what();
    check(m.find('\n') == std::string::npos, std::string(parser) + ": error message spans lines: " + m);
    return false;
  } catch (const std::exception& e) {
    fail(std::string(parser) + ": exception other than InputError: " + e.what());
  }
}

}  // namespace sc::fuzz
