// The folder layering of docs/architecture.md ("Where things are today"): every project include of
// every source file points at a folder its own folder may include (arrows one way, top to
// bottom; nothing includes apps/), and the torch-free folders include no LibTorch header. Scans
// the source tree itself, so a new file that breaks the layering fails here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = fs::path(SC_FIXTURES).parent_path();

// The layer a path (relative to the root) belongs to: its top folder, families/decoder apart.
std::string layer_of(const std::string& rel) {
  const size_t slash = rel.find('/');
  const std::string top = rel.substr(0, slash);
  if (top == "families" && rel.rfind("families/decoder/", 0) == 0) return "families/decoder";
  return top;
}

// What each layer may include besides itself (docs/architecture.md).
const std::map<std::string, std::set<std::string>>& allowed() {
  static const std::map<std::string, std::set<std::string>> a = {
      {"models", {}},
      {"layout", {"models"}},
      {"ops", {}},
      {"families", {"models", "layout"}},
      {"checks", {"models", "layout", "families"}},
      {"families/decoder", {"models", "layout", "families", "checks", "ops"}},
      {"harness", {"models", "layout", "families", "checks", "ops", "families/decoder"}},
      {"reports", {"models", "layout", "families", "checks", "ops", "families/decoder", "harness"}},
      {"steering", {"models", "layout", "families", "checks", "ops", "families/decoder", "harness", "reports"}},
      {"apps",
       {"models", "layout", "families", "checks", "ops", "families/decoder", "harness", "reports", "steering"}},
  };
  return a;
}

const std::set<std::string> kTorchFree = {"models", "layout", "families", "checks", "reports"};

struct Include {
  std::string file, target;
  int line;
  bool torch;
};

std::vector<Include> includes_of(const std::string& top) {
  std::vector<Include> v;
  static const std::regex project(R"(^\s*#\s*include\s*"([^"]+/[^"]+)\")");
  static const std::regex torch(R"(^\s*#\s*include\s*<(ATen|torch|c10)/)");
  for (const auto& e : fs::recursive_directory_iterator(kRoot / top)) {
    const std::string ext = e.path().extension().string();
    if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".cu")) continue;
    std::ifstream in(e.path());
    std::string line;
    int n = 0;
    std::smatch m;
    const std::string rel = fs::relative(e.path(), kRoot).string();
    while (std::getline(in, line)) {
      ++n;
      if (std::regex_search(line, m, project)) v.push_back({rel, m[1].str(), n, false});
      if (std::regex_search(line, m, torch)) v.push_back({rel, line, n, true});
    }
  }
  return v;
}

}  // namespace

TEST(Layering, EveryIncludeFollowsTheArrows) {
  int checked = 0;
  for (const auto& [layer, may] : allowed()) {
    if (layer == "families/decoder") continue;  // scanned with families/
    for (const Include& i : includes_of(layer)) {
      if (i.torch) continue;
      const std::string from = layer_of(i.file), to = layer_of(i.target);
      if (allowed().count(to) == 0) continue;  // third-party or generated headers
      ++checked;
      EXPECT_TRUE(to == from || allowed().at(from).count(to))
          << i.file << ":" << i.line << " (" << from << ") includes " << i.target << " (" << to << ")";
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(Layering, TorchFreeFoldersIncludeNoTorch) {
  int files = 0;
  for (const std::string& top : kTorchFree)
    for (const Include& i : includes_of(top)) {
      ++files;
      if (layer_of(i.file) == "families/decoder") continue;
      EXPECT_FALSE(i.torch) << i.file << ":" << i.line << " is in a torch-free folder: " << i.target;
    }
  EXPECT_GT(files, 100);
}
