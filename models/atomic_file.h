// Atomic file output shared by every writer (reports, JUnit, vectors, fixtures): write to a temp
// file in the destination folder, fsync, rename over the target. OutputError on failure; the
// temp file is removed, so a partial output never appears under the final name.
#pragma once
#include <string>

namespace sc {

void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace sc
