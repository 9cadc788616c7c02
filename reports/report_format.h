// Small formatting helpers shared by the strategy report writers (Markdown, HTML) and the JUnit
// writer: byte sizes, escaping, outcome labels and the predicted / measured markers. Torch-free.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checks/strategies.h"

namespace sc {

// "2.82 MiB", "56.0 KiB", "437.9 GiB" (binary units).
std::string format_bytes(double bytes);
// "61.8 GiB" (one decimal); below 0.1 GiB as format_bytes ("12.50 MiB").
std::string format_gib1(int64_t bytes);
// "235.1 B", "1.2 M", "512" (parameter counts).
std::string format_count(int64_t n);
// "141 GiB" / "79.5 GiB" for a limit given in GiB.
std::string format_gib_limit(double gib);
// "87.5%".
std::string format_percent(double fraction);

// Escapes & < > " ' for XML / HTML text and attribute values; drops characters XML 1.0 forbids.
std::string xml_escape(const std::string& s);

// Marker of a figure's source, as the legend explains: "ᵖ" predicted, "ᵐ" measured.
const char* source_mark(Source s);

// Short human label of an outcome: "works", "works, 1/8 busy", "fails", "out of memory", ...
std::string outcome_label(const StrategyResult& r);
// Visual class of a result: "ok" (works, GPUs busy at least half the time), "slow" (works, mostly
// idle), "fail" (fails / out of memory / silently wrong), "na" (not applicable).
const char* outcome_class(const StrategyResult& r);

// With report --run: why a row without a run was not run ("Not run at full size: ...",
// "Not run: ..."); "" when the report launched no runs, the row has a run or is not applicable.
std::string not_run_line(const StrategyReport& r, const StrategyResult& x);

// "0-3,5": ranks (sorted) as ranges.
std::string format_ranks(const std::vector<int64_t>& ranks);

// One line on what the row's harness run observed (x.run must be set): the raised texts with their
// ranks and whether they are exactly the checker's prediction for the run's shape, or the accuracy
// vs the single-device reference with the router attribution. `code` formats an exact text (error
// texts), `text` escapes plain text for the output format.
std::string measured_line(const StrategyResult& x, const std::function<std::string(const std::string&)>& code,
                          const std::function<std::string(const std::string&)>& text);

}  // namespace sc
