// tensor_signature (comm.h).
#include "models/qwen3/comm.h"

#include <cctype>

#include "models/errors.h"

namespace sc {

std::string tensor_signature(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string dt = c10::toString(t.scalar_type());
  for (auto& c : dt) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return shape_str(t.sizes().vec()) + " " + dt;
}

}  // namespace sc
