// Atomic file output shared by every writer (reports, JUnit, vectors, fixtures): write to a temp
// file in the destination folder, fsync, rename over the target. OutputError on failure; the
// temp file is removed, so a partial output never appears under the final name.
#pragma once
#include <string>

namespace sc {

void write_file_atomic(const std::string& path, const std::string& bytes);

// Makes `dir` (and its parents) and proves a file can be created in it (a temporary file, removed
// at once), so that a command fails before its work, not after it. OutputError naming the folder.
void require_writable_dir(const std::string& dir);

}  // namespace sc
