#!/usr/bin/env bash
# A copy of str0m = the crates.io release plus patches, in order, and nothing else (ADR 0009).
#
#   bash scripts/str0m-copy.sh generate [PATCH ...]   # write third_party/str0m-0.25.0
#   bash scripts/str0m-copy.sh check [PATCH ...]      # rebuild it from the registry's crate, diff
#
# PATCH defaults to third_party/str0m-patches/NNNN-*.patch (the set carried; scripts/test.sh
# runs `check`).
# The workspace (and fuzz/, tools/memprobe) build str0m from the copy through
# `[patch.crates-io]`. To try another patch: generate with the carried ones plus it, build
# two servers and compare them with loadtest/ab.sh; a patch that pays joins
# third_party/str0m-patches (the ADR's rule).
# Measured and not kept so far: docs/adr/0009/*.patch.
#
# The registry's crate is fetched by cargo (checksum from the crates.io index) into a
# throwaway project. Kept from it: src/, README.md (the crate's docs include it), the
# licence and Cargo.toml without its [[example]] and [[test]] sections (their files are not
# copied; cargo needs neither to build the library, nor resolves a non-member's
# dev-dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.25.0
COPY=third_party/str0m-$VERSION
PATCHES=third_party/str0m-patches
mode=${1:-check}
shift || true
patches=("$@")
if [ ${#patches[@]} = 0 ]; then
  for p in "$PATCHES"/[0-9][0-9][0-9][0-9]-*.patch; do [ -e "$p" ] && patches+=("$p"); done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fetch the release through cargo (verified against the index's checksum).
mkdir -p "$work/fetch/src"
cat > "$work/fetch/Cargo.toml" <<EOF
[package]
name = "fetch-str0m"
version = "0.0.0"
edition = "2021"
[dependencies]
str0m = { version = "=$VERSION", default-features = false }
[workspace]
EOF
touch "$work/fetch/src/lib.rs"
(cd "$work/fetch" && cargo fetch -q)
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/str0m-$VERSION.crate | head -1)
tar -xzf "$crate" -C "$work"
src=$work/str0m-$VERSION

out=$work/copy
mkdir -p "$out"
cp -r "$src/src" "$src/README.md" "$src/LICENSE-MIT.txt" "$out/"
# Cargo.toml without the sections whose files are not copied.
awk '
  /^\[\[(example|test|bench)\]\]/ { skip = 1; next }
  /^\[/ { skip = 0 }
  !skip
' "$src/Cargo.toml" > "$out/Cargo.toml"
for p in ${patches[@]+"${patches[@]}"}; do
  patch -s -p1 -d "$out" --no-backup-if-mismatch < "$p" || { echo "str0m copy: $p does not apply to $VERSION" >&2; exit 1; }
done

case "$mode" in
  generate)
    rm -rf "$COPY"
    mkdir -p "$(dirname "$COPY")"
    cp -r "$out" "$COPY"
    echo "wrote $COPY (str0m $VERSION + ${#patches[@]} patches)"
    ;;
  check)
    if diff -r -u "$out" "$COPY" > "$work/diff"; then
      echo "str0m copy: $COPY is str0m $VERSION + ${#patches[@]} patches, nothing else"
    else
      head -60 "$work/diff" >&2
      echo "str0m copy: $COPY differs from the release + patches (above); run: bash scripts/str0m-copy.sh generate" >&2
      exit 1
    fi
    ;;
  *) echo "usage: $0 check|generate" >&2; exit 2 ;;
esac
