// Anchor translation unit for the shared LibTorch precompiled header.
#include "torch_pch.h"
