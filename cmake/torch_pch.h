// The one precompiled header for every LibTorch target (see CMakeLists.txt).
#pragma once
#include <torch/torch.h>
