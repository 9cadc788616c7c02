// JUnit XML of a gate run, as CI systems read it (GitHub test reporters, GitLab, Jenkins):
//   <testsuites tests= failures= errors= time=>     (no skipped=: Jenkins' junit-10.xsd rejects it
//                                                   there; fixtures/junit/jenkins-junit-10.xsd)
//     <testsuite name="CONFIG" ...>          one per config, in command-line order
//       <testcase classname="shardcheck.gate.CONFIG" name="tp=8 ep=1 pp=1 plan=hf-auto" time=>
//         <failure type="FINDING-ID" message="ID: exact error text">every error finding</failure>
//         or <skipped type="known-failure" message="..."/> (listed in the baseline, like pytest's xfail)
//         or <skipped type="not-applicable" message="..."/> (the layout does not exist)
//       <testcase ... name="read PATH"><error type="config-error" message="config error: ..."/>
//         (the config could not be read: one testcase for that config, no layouts)
//       <system-err> stale baseline entries of this config </system-err>
// failures counts new failures only; errors counts configs that could not be read; skipped (per
// testsuite) counts known failures and layouts that do not exist.
#pragma once
#include <string>

#include "reports/gate.h"

namespace sc {

std::string render_junit(const GateResult& r);

}  // namespace sc
