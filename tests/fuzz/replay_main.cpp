// Corpus replayer for builds without libFuzzer: runs LLVMFuzzerTestOneInput once on every file
// named on the command line (directories: every regular file in them, sorted), prints how many
// ran, and fails when an argument is missing or holds no input. A crash or a failed check in the
// target aborts the process, which CTest reports as a failure.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;  // libFuzzer flags are accepted and ignored
    if (!is_dir(arg)) {
      files.push_back(arg);
      continue;
    }
    std::vector<std::string> in_dir;
    if (DIR* d = ::opendir(arg.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string p = arg + "/" + e->d_name;
        struct stat st;
        if (e->d_name[0] != '.' && ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) in_dir.push_back(p);
      }
      ::closedir(d);
    }
    if (in_dir.empty()) {
      std::fprintf(stderr, "replay: no inputs in %s\n", arg.c_str());
      return 1;
    }
    std::sort(in_dir.begin(), in_dir.end());
    files.insert(files.end(), in_dir.begin(), in_dir.end());
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
      return 1;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("replay: %zu inputs, no failure\n", files.size());
  return files.empty() ? 1 : 0;
}
