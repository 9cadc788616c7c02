// JUnit XML of a gate run, as CI systems read it (GitHub test reporters, GitLab, Jenkins):
//   <testsuites tests= failures= errors="0" skipped= time=>
//     <testsuite name="CONFIG" ...>          one per config, in command-line order
//       <testcase classname="shardcheck.gate.CONFIG" name="tp=8 ep=1 pp=1 plan=hf-auto" time=>
//         <failure type="FINDING-ID" message="ID: exact error text">every error finding</failure>
//         or <skipped type="known-failure" message="..."/> (listed in the baseline, like pytest's xfail)
//         or <skipped type="not-applicable" message="..."/> (the layout does not exist)
//       <system-err> stale baseline entries of this config </system-err>
// failures counts new failures only; skipped counts known failures and layouts that do not exist.
#pragma once
#include <string>

#include "reports/gate.h"

namespace sc {

std::string render_junit(const GateResult& r);

}  // namespace sc
