// The CI gate: JUnit XML well-formed with matching counts, baseline handling (known failure ->
// exit 0, new failure -> exit 1, stale entries reported, --write-baseline round trip) and bad
// input -> exit 2 naming the file. Also hosts the small XML well-formedness parser that
// test_reports.cpp uses for the HTML page (no XML library dependency).
#include "tests/cli_runner.h"
#include <gtest/gtest.h>

#include "families/family.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "models/config.h"
#include "families/family.h"
#include "reports/gate.h"
#include "reports/junit.h"

namespace sctest {

// ---- A small strict XML parser: enough to prove well-formedness and read elements back ----

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::vector<XmlNode> kids;
  std::string text;  // concatenated character data (entities decoded)
  std::vector<const XmlNode*> all(const std::string& n) const {  // descendants named n, document order
    std::vector<const XmlNode*> out;
    for (const auto& k : kids) {
      if (k.name == n) out.push_back(&k);
      auto sub = k.all(n);
      out.insert(out.end(), sub.begin(), sub.end());
    }
    return out;
  }
};

namespace {
struct XmlParser {
  const std::string& s;
  size_t i = 0;
  std::string err;
  bool fail(const std::string& m) {
    if (err.empty()) err = m + " at offset " + std::to_string(i);
    return false;
  }
  bool starts(const char* p) const { return s.compare(i, std::char_traits<char>::length(p), p) == 0; }
  void ws() {
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
  }
  bool name(std::string* out) {
    size_t b = i;
    while (i < s.size() && (std::isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == ':' || s[i] == '.'))
      ++i;
    if (i == b) return fail("expected a name");
    *out = s.substr(b, i - b);
    return true;
  }
  bool entity(std::string* out) {  // at '&'
    size_t semi = s.find(';', i);
    if (semi == std::string::npos || semi - i > 10) return fail("unterminated entity");
    const std::string e = s.substr(i + 1, semi - i - 1);
    static const std::map<std::string, std::string> known = {
        {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
    if (known.count(e)) *out += known.at(e);
    else if (e.size() > 1 && e[0] == '#') *out += '?';
    else return fail("unknown entity &" + e + ";");
    i = semi + 1;
    return true;
  }
  bool skip_misc() {  // comments, processing instructions, doctype
    while (true) {
      ws();
      if (starts("<?")) {
        size_t e = s.find("?>", i);
        if (e == std::string::npos) return fail("unterminated <?");
        i = e + 2;
      } else if (starts("<!--")) {
        size_t e = s.find("-->", i);
        if (e == std::string::npos) return fail("unterminated comment");
        i = e + 3;
      } else if (starts("<!DOCTYPE") || starts("<!doctype")) {
        size_t e = s.find('>', i);
        if (e == std::string::npos) return fail("unterminated doctype");
        i = e + 1;
      } else {
        return true;
      }
    }
  }
  bool element(XmlNode* n) {
    if (i >= s.size() || s[i] != '<') return fail("expected '<'");
    ++i;
    if (!name(&n->name)) return false;
    while (true) {
      ws();
      if (starts("/>")) {
        i += 2;
        return true;
      }
      if (i < s.size() && s[i] == '>') {
        ++i;
        break;
      }
      std::string k, v;
      if (!name(&k)) return false;
      ws();
      if (i >= s.size() || s[i] != '=') return fail("attribute " + k + " without a value");
      ++i;
      ws();
      if (i >= s.size() || (s[i] != '"' && s[i] != '\'')) return fail("unquoted attribute " + k);
      const char q = s[i++];
      while (i < s.size() && s[i] != q) {
        if (s[i] == '<') return fail("'<' in attribute " + k);
        if (s[i] == '&') {
          if (!entity(&v)) return false;
        } else {
          v += s[i++];
        }
      }
      if (i >= s.size()) return fail("unterminated attribute " + k);
      ++i;
      if (n->attrs.count(k)) return fail("duplicate attribute " + k);
      n->attrs[k] = v;
    }
    // Content.
    while (true) {
      if (i >= s.size()) return fail("unclosed <" + n->name + ">");
      if (starts("</")) {
        i += 2;
        std::string close;
        if (!name(&close)) return false;
        if (close != n->name) return fail("</" + close + "> closes <" + n->name + ">");
        ws();
        if (i >= s.size() || s[i] != '>') return fail("bad end tag");
        ++i;
        return true;
      }
      if (starts("<!--")) {
        size_t e = s.find("-->", i);
        if (e == std::string::npos) return fail("unterminated comment");
        i = e + 3;
      } else if (s[i] == '<') {
        n->kids.emplace_back();
        if (!element(&n->kids.back())) return false;
      } else if (s[i] == '&') {
        if (!entity(&n->text)) return false;
      } else {
        n->text += s[i++];
      }
    }
  }
};
}  // namespace

// Parses a whole document (prolog, one root element, trailing whitespace / comments).
bool parse_xml(const std::string& text, XmlNode* root, std::string* error) {
  XmlParser p{text};
  bool ok = p.skip_misc() && p.element(root) && p.skip_misc();
  if (ok && p.i != text.size()) ok = p.fail("content after the root element");
  if (!ok && error) *error = p.err;
  return ok;
}

namespace {
void count_elements(const XmlNode& n, std::map<std::string, int>* counts) {
  ++(*counts)[n.name];
  for (const auto& k : n.kids) count_elements(k, counts);
}
}  // namespace

// For test_reports.cpp: parses `text` and counts its elements by name.
bool xml_element_counts(const std::string& text, std::map<std::string, int>* counts, std::string* root,
                        std::string* error) {
  XmlNode n;
  if (!parse_xml(text, &n, error)) return false;
  *root = n.name;
  count_elements(n, counts);
  return true;
}

}  // namespace sctest

using sctest::XmlNode;

namespace {

using Out = sctest::CliOut;
Out run(const std::string& args) { return sctest::run_cli(args, /*separate_stderr=*/true); }

std::string cfg(const std::string& name) { return std::string(SC_FIXTURES) + "/configs/" + name + "/config.json"; }

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = temp_path(name);
  std::ofstream(path) << content;
  return path;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int attr_int(const XmlNode& n, const std::string& k) { return std::stoi(n.attrs.at(k)); }

// Checks every count attribute of <testsuites> and each <testsuite> against the elements.
void expect_counts_match(const XmlNode& root) {
  ASSERT_EQ(root.name, "testsuites");
  int tests = 0, failures = 0, errors = 0;
  for (const XmlNode* suite : root.all("testsuite")) {
    const auto cases = suite->all("testcase");
    int f = 0, e = 0, s = 0;
    for (const XmlNode* c : cases) {
      f += int(c->all("failure").size());
      e += int(c->all("error").size());
      s += int(c->all("skipped").size());
      EXPECT_LE(c->all("failure").size() + c->all("error").size() + c->all("skipped").size(), 1u)
          << c->attrs.at("name");
      EXPECT_FALSE(c->attrs.at("classname").empty());
    }
    EXPECT_EQ(attr_int(*suite, "tests"), int(cases.size())) << suite->attrs.at("name");
    EXPECT_EQ(attr_int(*suite, "failures"), f) << suite->attrs.at("name");
    EXPECT_EQ(attr_int(*suite, "skipped"), s) << suite->attrs.at("name");
    EXPECT_EQ(attr_int(*suite, "errors"), e) << suite->attrs.at("name");
    tests += int(cases.size());
    failures += f;
    errors += e;
  }
  EXPECT_EQ(attr_int(root, "tests"), tests);
  EXPECT_EQ(attr_int(root, "failures"), failures);
  EXPECT_EQ(attr_int(root, "errors"), errors);
  EXPECT_EQ(root.attrs.count("skipped"), 0u) << "Jenkins' junit-10.xsd has no skipped on <testsuites>";
}

bool have(const char* tool) { return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0; }

const char* kUsersError = "shape '[64, 103, -1, 128]' is invalid for input of size 421888";

}  // namespace

TEST(GateXml, ParserAcceptsAndRejects) {
  XmlNode n;
  std::string e;
  EXPECT_TRUE(sctest::parse_xml("<?xml version=\"1.0\"?>\n<a x='1'><b y=\"&apos;q&amp;\"/>t&lt;</a>\n", &n, &e)) << e;
  EXPECT_EQ(n.kids.at(0).attrs.at("y"), "'q&");
  EXPECT_EQ(n.text, "t<");
  EXPECT_FALSE(sctest::parse_xml("<a><b></a></b>", &n, &e));
  EXPECT_FALSE(sctest::parse_xml("<a x=1/>", &n, &e));
  EXPECT_FALSE(sctest::parse_xml("<a>&nbsp;</a>", &n, &e));
  EXPECT_FALSE(sctest::parse_xml("<a></a><b/>", &n, &e));
  EXPECT_FALSE(sctest::parse_xml("<a>", &n, &e));
}

TEST(GateJunit, WellFormedAndCountsMatch) {
  const std::string xml = temp_path("gate_counts.xml");
  // 4 configs x tp {1,2,4,8} x ep {1,2,3}: passes, failures (kv split at tp=8, 128 experts % 3),
  // skipped (dense with ep > 1; tp=2/4/8 with ep=3 do not divide).
  Out o = run("gate " + cfg("qwen3-235b-a22b") + " " + cfg("qwen3-30b-a3b") + " " + cfg("qwen3-32b") + " " +
              cfg("qwen3-0.6b") + " --ep 1,2,3 --junit " + xml + " --json");
  ASSERT_EQ(o.code, 1) << o.out << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["schema"], "shardcheck.gate/1");
  EXPECT_EQ(j["tests"], 48);
  EXPECT_GT(j["failures"].get<int>(), 0);
  EXPECT_GT(j["skipped"].get<int>(), 0);
  EXPECT_GT(j["passed"].get<int>(), 0);

  XmlNode root;
  std::string err;
  const std::string text = slurp(xml);
  ASSERT_TRUE(sctest::parse_xml(text, &root, &err)) << err << "\n" << text;
  expect_counts_match(root);
  EXPECT_EQ(attr_int(root, "tests"), 48);
  EXPECT_EQ(attr_int(root, "failures"), j["failures"].get<int>());
  int suite_skipped = 0;
  for (const XmlNode* suite : root.all("testsuite")) suite_skipped += attr_int(*suite, "skipped");
  EXPECT_EQ(suite_skipped, j["skipped"].get<int>() + j["known_failures"].get<int>());
  EXPECT_EQ(root.all("testsuite").size(), 4u);

  // The users' failure carries the finding id, its message and the exact error text.
  const XmlNode* users = nullptr;
  for (const XmlNode* c : root.all("testcase"))
    if (c->attrs.at("classname") == "shardcheck.gate.qwen3-235b-a22b" && c->attrs.at("name") == "tp=8 ep=1 pp=1 plan=hf-auto")
      users = c;
  ASSERT_NE(users, nullptr);
  const auto fails = users->all("failure");
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0]->attrs.at("type"), "kv-heads-split");
  EXPECT_EQ(fails[0]->attrs.at("message"), std::string("kv-heads-split: ") + kUsersError);
  EXPECT_NE(fails[0]->text.find("4 KV heads x 128 = 512"), std::string::npos) << fails[0]->text;
  EXPECT_NE(fails[0]->text.find(std::string("LibTorch raises: ") + kUsersError), std::string::npos);
  // A dense config with ep > 1 is skipped with its reason.
  bool dense_skip = false;
  for (const XmlNode* c : root.all("testcase"))
    if (c->attrs.at("classname") == "shardcheck.gate.qwen3-32b" && c->attrs.at("name") == "tp=1 ep=2 pp=1 plan=hf-auto") {
      ASSERT_EQ(c->all("skipped").size(), 1u);
      EXPECT_EQ(c->all("skipped")[0]->attrs.at("type"), "not-applicable");
      dense_skip = true;
    }
  EXPECT_TRUE(dense_skip);

  // Independent check with Python's XML parser where python3 exists.
  if (have("python3")) {
    const std::string py =
        "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
        "c = r.findall('.//testcase'); f = r.findall('.//testcase/failure'); s = r.findall('.//testcase/skipped'); "
        "ok = int(r.get('tests')) == len(c) and int(r.get('failures')) == len(f) and "
        "sum(int(t.get('skipped')) for t in r.findall('testsuite')) == len(s); "
        "sys.exit(0 if ok else 1)\" " + xml;
    EXPECT_EQ(std::system(py.c_str()), 0) << "python3 xml.etree disagrees with the counts";
  }
}

TEST(GateBaseline, KnownFailureExitsZero) {
  const std::string base = write_temp("gate_known.json",
                                      R"([{"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto",
                                          "finding": "kv-heads-split", "reason": "HF bug, tracked"}])");
  const std::string xml = temp_path("gate_known.xml");
  Out o = run("gate " + cfg("qwen3-235b-a22b") + " --baseline " + base + " --junit " + xml);
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("KNOWN"), std::string::npos) << o.out;
  XmlNode root;
  std::string err;
  ASSERT_TRUE(sctest::parse_xml(slurp(xml), &root, &err)) << err;
  expect_counts_match(root);
  EXPECT_EQ(attr_int(root, "failures"), 0);
  EXPECT_EQ(attr_int(root.kids.at(0), "skipped"), 1);
  const auto skipped = root.all("skipped");
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0]->attrs.at("type"), "known-failure");
  EXPECT_NE(skipped[0]->attrs.at("message").find(kUsersError), std::string::npos);
  EXPECT_TRUE(o.err.find("stale") == std::string::npos) << o.err;
}

TEST(GateBaseline, NewFailureExitsOne) {
  const std::string base = write_temp("gate_new.json",
                                      R"([{"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto",
                                          "finding": "kv-heads-split"}])");
  // 30B-A3B has the same 4 KV heads: its tp=8 failure is not in the baseline.
  Out o = run("gate " + cfg("qwen3-235b-a22b") + " " + cfg("qwen3-30b-a3b") + " --baseline " + base + " --json");
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["failures"], 1);
  EXPECT_EQ(j["known_failures"], 1);
  for (const auto& c : j["cases"])
    if (c["status"] == "fail") {
      EXPECT_EQ(c["config"], "qwen3-30b-a3b");
      EXPECT_EQ(c["new_findings"], nlohmann::json::array({"kv-heads-split"}));
    }
  // A different finding on a listed layout is new as well (the baseline names findings, not layouts).
  const std::string other = write_temp("gate_other.json",
                                       R"([{"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto",
                                           "finding": "memory"}])");
  EXPECT_EQ(run("gate " + cfg("qwen3-235b-a22b") + " --baseline " + other).code, 1);
}

TEST(GateBaseline, StaleEntryReported) {
  // tp=4 passes now: its entry is stale. The entry of a config outside this run is not.
  const std::string base = write_temp("gate_stale.json", R"([
    {"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto", "finding": "kv-heads-split"},
    {"config": "qwen3-235b-a22b", "tp": 4, "ep": 1, "pp": 1, "plan": "hf-auto", "finding": "kv-heads-split"},
    {"config": "some-other-model", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto", "finding": "kv-heads-split"}])");
  const std::string xml = temp_path("gate_stale.xml");
  Out o = run("gate " + cfg("qwen3-235b-a22b") + " --baseline " + base + " --junit " + xml + " --json");
  EXPECT_EQ(o.code, 0) << o.out << o.err;  // stale entries are reported, not failures
  EXPECT_NE(o.err.find("stale baseline entry qwen3-235b-a22b tp=4 ep=1 pp=1 plan=hf-auto: kv-heads-split"),
            std::string::npos)
      << o.err;
  EXPECT_EQ(o.err.find("some-other-model"), std::string::npos) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  ASSERT_EQ(j["stale_baseline"].size(), 1u);
  EXPECT_EQ(j["stale_baseline"][0]["tp"], 4);
  XmlNode root;
  std::string err;
  ASSERT_TRUE(sctest::parse_xml(slurp(xml), &root, &err)) << err;
  const auto syserr = root.all("system-err");
  ASSERT_EQ(syserr.size(), 1u);
  EXPECT_NE(syserr[0]->text.find("tp=4"), std::string::npos);
}

TEST(GateBaseline, WriteBaselineRoundTripKeepsOtherEntries) {
  const std::string old = write_temp("gate_old.json", R"([
    {"config": "some-other-model", "tp": 2, "ep": 1, "pp": 1, "plan": "hf-auto", "finding": "vocab-split", "reason": "keep me"},
    {"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto", "finding": "kv-heads-split", "reason": "HF #48307"}])");
  const std::string fresh = temp_path("gate_fresh.json");
  Out w = run("gate " + cfg("qwen3-235b-a22b") + " " + cfg("qwen3-30b-a3b") + " --baseline " + old +
              " --write-baseline " + fresh);
  EXPECT_EQ(w.code, 0) << w.out << w.err;  // everything failing is now accepted
  const auto j = nlohmann::json::parse(slurp(fresh));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u) << j.dump(1);
  // Sorted by config, then layout; reasons carried over.
  EXPECT_EQ(j[0]["config"], "qwen3-235b-a22b");
  EXPECT_EQ(j[0]["reason"], "HF #48307");
  EXPECT_EQ(j[1]["config"], "qwen3-30b-a3b");
  EXPECT_EQ(j[1]["finding"], "kv-heads-split");
  EXPECT_EQ(j[2]["config"], "some-other-model");
  EXPECT_EQ(j[2]["reason"], "keep me");
  // The written file is a valid baseline that makes the same run pass.
  EXPECT_EQ(run("gate " + cfg("qwen3-235b-a22b") + " " + cfg("qwen3-30b-a3b") + " --baseline " + fresh).code, 0);
}

TEST(GateBaseline, LibraryMatchesByNameOrPath) {
  const sc::ModelConfig c = sc::ModelConfig::from_file(cfg("qwen3-235b-a22b"));
  sc::GateOptions o;
  o.tps = {4, 8};
  o.plans = {sc::PlanStyle::HfAuto, sc::PlanStyle::ReplicateKv};
  sc::BaselineEntry by_path{cfg("qwen3-235b-a22b"), 8, 1, 1, "hf-auto", "kv-heads-split", ""};
  sc::GateResult r = sc::run_gate({c}, {cfg("qwen3-235b-a22b")}, o, {by_path});
  ASSERT_EQ(r.cases.size(), 4u);
  EXPECT_EQ(r.count(sc::CaseStatus::Pass), 3);
  EXPECT_EQ(r.count(sc::CaseStatus::KnownFailure), 1);
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_TRUE(r.stale.empty());
  sc::apply_baseline(r, {});
  EXPECT_EQ(r.exit_code(), 1);
  const auto entries = sc::baseline_from(r);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].describe(), "qwen3-235b-a22b tp=8 ep=1 pp=1 plan=hf-auto: kv-heads-split");
  // The JUnit of the library result is well-formed too.
  XmlNode root;
  std::string err;
  ASSERT_TRUE(sctest::parse_xml(sc::render_junit(r), &root, &err)) << err;
  expect_counts_match(root);
}

TEST(GateInput, BadFlagsOrBaselineExitTwoNamingTheFile) {
  Out o;
  for (const std::string& bad : {std::string(R"({"config": "x"})"), std::string(R"([{"config": "x", "tp": "8", "finding": "f"}])"),
                                 std::string(R"([{"config": "x", "TP": 8, "finding": "f"}])"),
                                 std::string(R"([{"config": "x", "tp": 8}])"),
                                 std::string(R"([{"config": "x", "plan": "auto-magic", "finding": "f"}])"), std::string("[")}) {
    const std::string base = write_temp("gate_bad_baseline.json", bad);
    o = run("gate " + cfg("qwen3-235b-a22b") + " --baseline " + base);
    EXPECT_EQ(o.code, 2) << bad;
    EXPECT_NE(o.err.find(base), std::string::npos) << bad << ": " << o.err;
  }
  EXPECT_EQ(run("gate " + cfg("qwen3-235b-a22b") + " --baseline " + temp_path("absent.json")).code, 2);
  EXPECT_EQ(run("gate " + cfg("qwen3-235b-a22b") + " --tp 8,x").code, 2);
  EXPECT_EQ(run("gate " + cfg("qwen3-235b-a22b") + " --plan hf-auto,bogus").code, 2);
  EXPECT_EQ(run("gate " + cfg("qwen3-235b-a22b") + " --batch 0").code, 2);
  EXPECT_EQ(run("gate").code, 2);  // no config
}

namespace {
// A model repository as `git ls-files '*config.json'` lists it: two model configs, the other
// *config.json files HF repositories carry, and two model configs that cannot be read.
struct Repo {
  std::string dir, m235, gen, tok, pre, m30, bad_value, bad_json, vl, missing;
};
Repo make_repo(const std::string& tag) {
  Repo r;
  r.dir = temp_path("gate_repo_" + tag);
  std::system(("rm -rf '" + r.dir + "' && mkdir -p '" + r.dir + "/qwen3-235b' '" + r.dir + "/qwen3-30b' '" + r.dir +
               "/broken' '" + r.dir + "/vl'")
                  .c_str());
  auto put = [](const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    return path;
  };
  r.m235 = put(r.dir + "/qwen3-235b/config.json", slurp(cfg("qwen3-235b-a22b")));
  r.gen = put(r.dir + "/qwen3-235b/generation_config.json",
              R"({"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643], "temperature": 0.6,
                  "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"})");
  r.tok = put(r.dir + "/qwen3-235b/tokenizer_config.json",
              R"({"add_bos_token": false, "model_max_length": 131072, "tokenizer_class": "Qwen2Tokenizer"})");
  r.pre = put(r.dir + "/vl/preprocessor_config.json",
              R"({"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "model_type": "qwen2_5_vl"})");
  r.m30 = put(r.dir + "/qwen3-30b/config.json", slurp(cfg("qwen3-30b-a3b")));
  r.bad_value = put(r.dir + "/broken/config.json", R"({"model_type": "qwen3", "hidden_size": "4096"})");
  r.bad_json = put(r.dir + "/broken/adapter_config.json", "{\"hidden_size\": ");
  // A multimodal config holds the text model's sizes in text_config: a model config, not a
  // supported one.
  r.vl = put(r.dir + "/vl/config.json",
             R"({"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
                 "text_config": {"hidden_size": 3584, "num_hidden_layers": 28}})");
  r.missing = r.dir + "/gone/config.json";
  return r;
}
}  // namespace

TEST(GateRepo, SelectsModelConfigsByContent) {
  EXPECT_EQ(sc::not_a_model_config(nlohmann::json::array()), "not a JSON object (a array)");
  EXPECT_EQ(sc::not_a_model_config({{"bos_token_id", 1}}),
            "no model_type or architectures key (a generation, tokenizer or processor config?)");
  EXPECT_EQ(sc::not_a_model_config({{"model_type", "qwen2_5_vl"}, {"patch_size", 14}}),
            "no hidden_size, num_hidden_layers or num_attention_heads at the top level or in text_config");
  // A bare family type lacks the size keys: not a model config by content alone, but the gate reads
  // it as one (read_gate_input: a family this tool reads), so its errors show (below).
  EXPECT_NE(sc::not_a_model_config({{"model_type", "qwen3"}}), "");
  {
    const std::string bare = temp_path("gate_bare_qwen3_config.json");
    std::ofstream(bare) << R"({"model_type": "qwen3"})";
    const sc::GateInput in = sc::read_gate_input(bare);
    EXPECT_EQ(in.not_model, "");
    EXPECT_EQ(in.error, "config error: " + bare + ": key 'hidden_size' = (missing): required key is missing");
  }
  EXPECT_EQ(sc::not_a_model_config({{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 4096}}), "");
  EXPECT_EQ(sc::not_a_model_config({{"model_type", "x"}, {"text_config", {{"num_attention_heads", 28}}}}), "");

  const Repo r = make_repo("select");
  const std::string xml = temp_path("gate_repo_select.xml");
  Out o = run("gate " + r.m235 + " " + r.gen + " " + r.tok + " " + r.pre + " " + r.m30 + " --tp 4,8 --junit " + xml);
  EXPECT_EQ(o.code, 1) << o.out << o.err;  // the tp=8 failures; the other files are not model configs
  EXPECT_EQ(o.err, "shardcheck gate: skipped " + r.gen +
                       ": not a model config: no model_type or architectures key (a generation, tokenizer or "
                       "processor config?)\n"
                       "shardcheck gate: skipped " + r.tok +
                       ": not a model config: no model_type or architectures key (a generation, tokenizer or "
                       "processor config?)\n"
                       "shardcheck gate: skipped " + r.pre +
                       ": not a model config: no hidden_size, num_hidden_layers or num_attention_heads at the top "
                       "level or in text_config\n");
  EXPECT_NE(o.out.find("NOTMODEL " + r.tok + "  (no model_type or architectures key"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("4 case(s): 2 passed, 2 failed, 0 known failure(s), 0 skipped, 0 config error(s), 0 stale "
                       "baseline entries; 3 file(s) not model configs\n"),
            std::string::npos)
      << o.out;
  XmlNode root;
  std::string err;
  ASSERT_TRUE(sctest::parse_xml(slurp(xml), &root, &err)) << err;
  expect_counts_match(root);
  ASSERT_EQ(root.all("testsuite").size(), 2u);
  EXPECT_EQ(root.all("testsuite")[0]->attrs.at("name"), "qwen3-235b");
  EXPECT_EQ(root.all("testsuite")[1]->attrs.at("name"), "qwen3-30b");

  // Only files that are not model configs: nothing to gate, exit 0.
  o = run("gate " + r.gen + " " + r.tok + " --json");
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["tests"], 0);
  ASSERT_EQ(j["not_model_configs"].size(), 2u);
  EXPECT_EQ(j["not_model_configs"][1]["path"], r.tok);
  EXPECT_EQ(j["exit_code"], 0);
}

TEST(GateRepo, UnreadableConfigIsAnErrorCaseOthersStillGated) {
  const Repo r = make_repo("errors");
  const std::string xml = temp_path("gate_repo_errors.xml");
  Out o = run("gate " + r.m235 + " " + r.bad_value + " " + r.bad_json + " " + r.vl + " " + r.missing + " " + r.m30 +
              " " + r.gen + " --tp 4,8 --junit " + xml + " --json");
  // Config errors decide the exit code (3) even with new failures in the other configs.
  EXPECT_EQ(o.code, 3) << o.out << o.err;
  const std::string e_value = "config error: " + r.bad_value + ": key 'hidden_size' = \"4096\": must be an integer, not a string";
  const std::string e_json = "config error: " + r.bad_json +
                             ": invalid JSON: parse error at line 1, column 17: syntax error while parsing value - "
                             "unexpected end of input; expected '[', '{', or a literal";
  const std::string e_vl = "config error: " + r.vl +
                           ": key 'model_type' = \"qwen2_5_vl\": unsupported model_type (supported: " + sc::supported_model_types() + ")";
  const std::string e_missing = "config error: " + r.missing + ": cannot open file";
  EXPECT_EQ(o.err, "shardcheck: " + e_value + "\nshardcheck: " + e_json + "\nshardcheck: " + e_vl + "\nshardcheck: " +
                       e_missing + "\nshardcheck gate: skipped " + r.gen +
                       ": not a model config: no model_type or architectures key (a generation, tokenizer or "
                       "processor config?)\n");
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["tests"], 8);  // 2 configs x 2 layouts + 4 error cases
  EXPECT_EQ(j["passed"], 2);
  EXPECT_EQ(j["failures"], 2);
  EXPECT_EQ(j["errors"], 4);
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_EQ(j["cases"][2]["status"], "error");
  EXPECT_EQ(j["cases"][2]["error"], e_value);
  EXPECT_EQ(j["cases"][2]["layout"], "read " + r.bad_value);

  XmlNode root;
  std::string err;
  ASSERT_TRUE(sctest::parse_xml(slurp(xml), &root, &err)) << err;
  expect_counts_match(root);
  EXPECT_EQ(attr_int(root, "tests"), 8);
  EXPECT_EQ(attr_int(root, "failures"), 2);
  EXPECT_EQ(attr_int(root, "errors"), 4);
  // Suites in command-line order; both broken files live in broken/, one suite with two errors.
  const auto suites = root.all("testsuite");
  ASSERT_EQ(suites.size(), 5u);
  EXPECT_EQ(suites[1]->attrs.at("name"), "broken");
  EXPECT_EQ(attr_int(*suites[1], "errors"), 2);
  EXPECT_EQ(attr_int(*suites[1], "tests"), 2);
  EXPECT_EQ(attr_int(*suites[3], "errors"), 1);  // gone/
  std::vector<std::string> names, messages;
  for (const XmlNode* c : root.all("testcase"))
    for (const XmlNode* e : c->all("error")) {
      EXPECT_EQ(e->attrs.at("type"), "config-error");
      names.push_back(c->attrs.at("name"));
      messages.push_back(e->attrs.at("message"));
    }
  EXPECT_EQ(names, (std::vector<std::string>{"read " + r.bad_value, "read " + r.bad_json, "read " + r.vl,
                                             "read " + r.missing}));
  EXPECT_EQ(messages, (std::vector<std::string>{e_value, e_json, e_vl, e_missing}));

  // A baseline entry of a config that could not be read is neither used nor stale.
  const std::string base = write_temp("gate_repo_base.json",
                                      R"([{"config": "broken", "tp": 4, "finding": "kv-heads-split"}])");
  o = run("gate " + r.bad_value + " --tp 4 --baseline " + base);
  EXPECT_EQ(o.code, 3);
  EXPECT_EQ(o.err, "shardcheck: " + e_value + "\n");
  // Without the unreadable configs the same run exits 1 (new failures).
  EXPECT_EQ(run("gate " + r.m235 + " " + r.m30 + " " + r.gen + " --tp 4,8").code, 1);
}

namespace {
// `xmllint --schema XSD FILE`: exit status and output (stderr included).
int xmllint(const std::string& xsd, const std::string& file, std::string* out) {
  const std::string cmd = "xmllint --noout --schema '" + xsd + "' '" + file + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out->append(buf.data(), n);
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

// The gate's JUnit is valid against Jenkins' junit-10.xsd (fixtures/junit), with every element it
// writes: pass, failure, known failure (skipped + system-out), not-applicable skip, config error,
// stale baseline entry (system-err), properties.
TEST(GateJunit, ValidAgainstJenkinsSchema) {
  if (!have("xmllint")) GTEST_SKIP() << "xmllint not found (Debian package libxml2-utils, in setup.sh)";
  const std::string xsd = std::string(SC_FIXTURES) + "/junit/jenkins-junit-10.xsd";
  const Repo r = make_repo("xsd");
  const std::string base = write_temp("gate_xsd_base.json", R"([
    {"config": "qwen3-235b", "tp": 8, "finding": "kv-heads-split", "reason": "known"},
    {"config": "qwen3-235b", "tp": 4, "finding": "kv-heads-split"}])");
  const std::string xml = temp_path("gate_xsd.xml");
  Out o = run("gate " + r.m235 + " " + r.m30 + " " + r.bad_value + " " + cfg("qwen3-32b") + " " + r.gen +
              " --tp 4,8 --ep 1,2 --baseline " + base + " --junit " + xml);
  ASSERT_EQ(o.code, 3) << o.out << o.err;
  const std::string text = slurp(xml);
  for (const char* element : {"<failure ", "<skipped type=\"known-failure\"", "<skipped type=\"not-applicable\"",
                              "<error type=\"config-error\"", "<system-out>", "<system-err>", "<property "})
    EXPECT_NE(text.find(element), std::string::npos) << element << " missing:\n" << text;
  std::string out;
  EXPECT_EQ(xmllint(xsd, xml, &out), 0) << out << "\n" << text;

  // The schema is really checked: the old root (skipped= on <testsuites>) and a testsuite
  // without errors= are rejected.
  std::string old = text;
  old.replace(old.find("\" time="), 0, "\" skipped=\"1");
  const std::string bad = write_temp("gate_xsd_old.xml", old);
  out.clear();
  EXPECT_NE(xmllint(xsd, bad, &out), 0);
  EXPECT_NE(out.find("Element 'testsuites', attribute 'skipped': The attribute 'skipped' is not allowed."),
            std::string::npos)
      << out;
  std::string no_errors = text;
  const size_t suite = no_errors.find("<testsuite ");
  no_errors.erase(no_errors.find(" errors=", suite), std::string(" errors=\"0\"").size());
  const std::string bad2 = write_temp("gate_xsd_noerrors.xml", no_errors);
  out.clear();
  EXPECT_NE(xmllint(xsd, bad2, &out), 0);
  EXPECT_NE(out.find("Element 'testsuite': The attribute 'errors' is required but missing."), std::string::npos) << out;
}
