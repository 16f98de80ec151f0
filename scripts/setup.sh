#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with Rust lacks to build
# perceptd: libclang for the v4l crate's bindgen. Safe to run again.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q libclang; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing libclang-dev (needed by the v4l crate's bindgen)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libclang-dev >/dev/null
fi
