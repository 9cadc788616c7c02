#include "models/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "models/errors.h"

namespace sc {

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string dir = ".";
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  std::string tmpl = path + ".tmp.XXXXXX";
  std::string buf = tmpl;
  int fd = mkstemp(buf.data());
  if (fd < 0) throw OutputError(path, std::string("cannot create temporary file: ") + std::strerror(errno));
  auto fail = [&](const char* what) {
    int e = errno;
    close(fd);
    unlink(buf.c_str());
    throw OutputError(path, std::string(what) + ": " + std::strerror(e));
  };
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    off += size_t(n);
  }
  if (fchmod(fd, 0644) != 0) fail("chmod failed");
  if (fsync(fd) != 0) fail("fsync failed");
  if (close(fd) != 0) {
    int e = errno;
    unlink(buf.c_str());
    throw OutputError(path, std::string("close failed: ") + std::strerror(e));
  }
  if (rename(buf.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(buf.c_str());
    throw OutputError(path, std::string("rename failed: ") + std::strerror(e));
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

void require_writable_dir(const std::string& dir) {
  std::string partial;
  for (size_t i = 0; i <= dir.size(); ++i) {  // mkdir -p
    if (i < dir.size() && dir[i] != '/') continue;
    partial = dir.substr(0, i);
    if (partial.empty()) continue;
    struct stat st;
    if (stat(partial.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) throw OutputError(dir, "'" + partial + "' exists and is not a folder");
      continue;
    }
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
      throw OutputError(dir, std::string("cannot create the output folder: ") + std::strerror(errno));
  }
  std::string probe = (dir.empty() ? std::string(".") : dir) + "/.shardcheck-write-test.XXXXXX";
  const int fd = mkstemp(probe.data());
  if (fd < 0) throw OutputError(dir, std::string("cannot write in the output folder: ") + std::strerror(errno));
  close(fd);
  unlink(probe.c_str());
}

}  // namespace sc
