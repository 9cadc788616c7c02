#!/usr/bin/env bash
# Render a shardcheck HTML report in headless Chromium: prove the browser parses it (the DOM it
# builds holds the inline SVG charts) and write a PNG screenshot.
#
#   tools/render_html_test.sh REPORT.html OUT.png [WIDTH,HEIGHT]
#   tools/render_html_test.sh --docs [BUILD_DIR]     regenerate docs/report-235b.md and .png
#
# Needs the Debian package `chromium` (apt-get install -y chromium); exits 77 (skip) without it.
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
abs() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then echo "render_html_test: chromium not installed: skipped" >&2; exit 77; fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$profile")

render() {  # html png size
  local html=$1 png=$2 size=${3:-1280,1580}
  local url="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
  if ! timeout 120 "$browser" "${flags[@]}" --dump-dom "$url" 2>/dev/null | grep -q "<svg"; then
    echo "render_html_test: $html: no <svg> in the DOM Chromium built" >&2; exit 1
  fi
  timeout 120 "$browser" "${flags[@]}" --window-size="$size" --screenshot="$png" "$url" >/dev/null 2>&1
  if [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]; then
    echo "render_html_test: $png is not a PNG" >&2; exit 1
  fi
  echo "render_html_test: $html -> $png ($(wc -c <"$png") bytes)"
}

if [ "${1:-}" = "--docs" ]; then
  build=${2:-build}
  cfg=fixtures/configs/qwen3-235b-a22b/config.json
  "$build/shardcheck" report "$cfg" --html "$profile/report-235b.html" --md docs/report-235b.md
  render "$profile/report-235b.html" docs/report-235b.png 1280,1580
  exit 0
fi
[ $# -ge 2 ] || { echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT] | --docs [BUILD_DIR]" >&2; exit 2; }
render "$(abs "$1")" "$(abs "$2")" "${3:-1280,1580}"
