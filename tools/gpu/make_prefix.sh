#!/usr/bin/env bash
# Copies the Debian 12 headers and static libraries the GPU machine lacks (gloo headers for c10d,
# nlohmann, CLI11, rapidcheck, GoogleTest, pcre2, utf8proc) into third_party_local/prefix
# (git-ignored), laid out as a CMake/pkg-config prefix, to be carried to that machine
# (tools/gpu/run.sh). Run here after setup.sh; ~7 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
P=third_party_local/prefix
A=lib/x86_64-linux-gnu
rm -rf "$P" && mkdir -p "$P/include" "$P/$A/cmake" "$P/$A/pkgconfig" "$P/share/cmake"
for d in gloo nlohmann CLI rapidcheck gtest gmock; do cp -r /usr/include/$d "$P/include/"; done
cp /usr/include/rapidcheck.h /usr/include/pcre2.h /usr/include/utf8proc.h "$P/include/"
cp /usr/$A/{libgtest.a,libgtest_main.a,libgmock.a,libgmock_main.a,librapidcheck.a,libpcre2-8.a,libutf8proc.a} "$P/$A/"
cp -r /usr/$A/cmake/GTest /usr/$A/cmake/rapidcheck "$P/$A/cmake/"
cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json "$P/share/cmake/"
for f in libpcre2-8 libutf8proc; do
  sed -e 's#^prefix=.*#prefix=${pcfiledir}/../../..#' -e 's#^libdir=.*#libdir=${prefix}/lib/x86_64-linux-gnu#' \
      -e 's#^includedir=.*#includedir=${prefix}/include#' /usr/$A/pkgconfig/$f.pc > "$P/$A/pkgconfig/$f.pc"
done
du -sh "$P"
