#!/usr/bin/env bash
# Build OpenSSL (static libraries and headers) for mediasoup's worker from the source that
# the `openssl-src` crate on crates.io carries, and print where it is installed. Does
# nothing but print the path when it is already built. Called by build.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CRATE=300.6.1+3.6.3
OUT=$HERE/build/openssl-$CRATE
if [ -f "$OUT/lib/libssl.a" ] && [ -f "$OUT/lib/libcrypto.a" ]; then
  echo "$OUT"; exit 0
fi
FETCH=$HERE/build/openssl-fetch
mkdir -p "$FETCH/src"
cat > "$FETCH/Cargo.toml" <<TOML
[package]
name = "openssl-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
openssl-src = "=$CRATE"
[workspace]
TOML
echo 'fn main() {}' > "$FETCH/src/main.rs"
cargo fetch -q --manifest-path "$FETCH/Cargo.toml" >&2
MANIFEST=$(cargo metadata -q --format-version 1 --manifest-path "$FETCH/Cargo.toml" \
  | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="openssl-src"))')
SRC=$(dirname "$MANIFEST")/openssl
WORK=$HERE/build/openssl-src
rm -rf "$WORK" && cp -r "$SRC" "$WORK"
cd "$WORK"
# The crate ships no shared-library helpers: static only, as openssl-src builds it.
./Configure linux-x86_64 no-shared no-module no-legacy no-tests no-docs no-comp \
  no-ssl3 no-weak-ssl-ciphers --prefix="$OUT" --libdir=lib >&2
make -j"$(nproc)" build_libs >&2
mkdir -p "$OUT/lib" "$OUT/include"
cp libssl.a libcrypto.a "$OUT/lib/"
cp -r include/openssl "$OUT/include/"
cd "$HERE" && rm -rf "$WORK"
echo "$OUT"
