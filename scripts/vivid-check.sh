#!/usr/bin/env bash
# perceptd's V4L2 path on a real kernel: boots the distribution kernel
# (Debian linux-image-amd64) in QEMU with an initramfs holding busybox, the
# modules the `vivid` virtual camera driver needs, perceptd (release build)
# with its shared libraries, v4l2-ctl and a tiny test model; loads vivid as
# two devices (/dev/video0 single-planar, /dev/video1 multiplanar) and runs
# scripts/vivid-guest.sh inside: record / replay / run for every format
# perceptd reads, faults (disconnect, unbind/bind, stall, error buffers,
# missing device, adjusted format), timestamps, SIGTERM. One line per case;
# exit 1 if any case fails, 0 when all pass.
#
# KVM is used when it boots the kernel (tried for a few seconds), else
# QEMU's software emulation (TCG; the whole run then takes ~10 min on 2
# cores). Everything fetched (kernel, busybox, v4l-utils .debs, extracted)
# lives in target/vivid/ and is reused; missing host tools (qemu, cpio) are
# installed with apt-get. Prints "vivid-check: SKIP: <why>" and exits 0
# only when this machine truly cannot run it (not Debian-like, no root to
# install QEMU, no package mirror).
#
# Environment: PERCEPTD_BIN (binary to test; default: build the release
# one), VIVID_ACCEL (auto | kvm | tcg), VIVID_CASES (space-separated case
# name prefixes to run; default all), VIVID_TIMEOUT_S (whole guest run,
# default 1500).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/target/vivid
START=$(date +%s)
log() { echo "vivid-check: $*" >&2; }
skip() {
    echo "vivid-check: SKIP: $*"
    exit 0
}

# ---- host tools -----------------------------------------------------------
command -v apt-get >/dev/null || skip "no apt-get (the kernel and tools come from Debian packages)"
SUDO=
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
fi
apt_updated=
apt_update() {
    [ -n "$apt_updated" ] && return 0
    if [ "$SUDO" = none ]; then return 1; fi
    $SUDO apt-get update -qq >/dev/null 2>&1 || return 1
    apt_updated=1
}
need_tool() { # tool package
    command -v "$1" >/dev/null && return 0
    [ "$SUDO" = none ] && skip "$1 missing and no root to install $2"
    log "installing $2"
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1; then
        apt_update || skip "apt-get update failed (no package mirror?)"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 ||
            skip "cannot install $2"
    fi
    command -v "$1" >/dev/null || skip "$2 installed but $1 not found"
}
need_tool qemu-system-x86_64 qemu-system-x86
need_tool cpio cpio
need_tool ldd libc-bin
need_tool strip binutils

# ---- kernel, busybox, v4l-utils (as .debs, never installed) ---------------
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
KPKG=$(kpkg || true)
if [ -z "$KPKG" ]; then
    apt_update || skip "apt-get update failed and apt knows no linux-image-amd64"
    KPKG=$(kpkg || true)
fi
[ -n "$KPKG" ] || skip "apt knows no linux-image-amd64 (not a Debian amd64 archive)"
KVER=${KPKG#linux-image-}
PKGS="$KPKG busybox-static v4l-utils libv4l-0 libv4lconvert0 libjpeg62-turbo libstdc++6 libgcc-s1"
DEBS=$CACHE/debs
X=$CACHE/root-$KVER
mkdir -p "$DEBS"
if [ ! -f "$X/.done" ]; then
    log "fetching $PKGS"
    (cd "$DEBS" && apt-get download $PKGS >/dev/null 2>&1) ||
        { apt_update && (cd "$DEBS" && apt-get download $PKGS >/dev/null 2>&1); } ||
        skip "apt-get download $PKGS failed (no package mirror?)"
    rm -rf "$X" && mkdir -p "$X"
    for p in $PKGS; do
        deb=$(ls -t "$DEBS"/"${p}"_*.deb | head -1)
        dpkg-deb -x "$deb" "$X"
    done
    touch "$X/.done"
fi
VMLINUZ=$X/boot/vmlinuz-$KVER
MODDIR=$X/lib/modules/$KVER
BUSYBOX=$X/bin/busybox
[ -f "$VMLINUZ" ] && [ -d "$MODDIR" ] && [ -x "$BUSYBOX" ] || skip "package contents unexpected ($VMLINUZ, $MODDIR, $BUSYBOX)"
[ -f "$MODDIR/modules.dep" ] || "$BUSYBOX" depmod -b "$X" "$KVER"

# ---- perceptd ---------------------------------------------------------------
if [ -n "${PERCEPTD_BIN:-}" ]; then
    BIN=$PERCEPTD_BIN
else
    log "building perceptd (release)"
    cargo build --release --locked --bin perceptd >&2
    BIN=$ROOT/target/release/perceptd
fi
[ -x "$BIN" ] || { echo "vivid-check: FAIL: no perceptd binary at $BIN"; exit 1; }
MODEL=$ROOT/tests/fixtures/exports/yolov8-w0125-static/model.onnx

# ---- initramfs ----------------------------------------------------------------
IR=$CACHE/initramfs
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,dev,proc,sys,tmp,m,usr/bin,lib/modules/"$KVER"}
cp "$BUSYBOX" "$IR/bin/busybox"
strip -o "$IR/bin/perceptd" "$BIN"
cp "$X/usr/bin/v4l2-ctl" "$IR/usr/bin/v4l2-ctl"
cp "$MODEL" "$IR/m/model.onnx"
cp scripts/vivid-guest.sh "$IR/cases.sh"
# vivid and what it needs, from modules.dep.
mods=$(awk -v want="vivid.ko" '{ k=$1; sub(/:$/,"",k); n=split(k,a,"/"); if (a[n]==want) { print k; for (i=2;i<=NF;i++) print $i } }' "$MODDIR/modules.dep")
[ -n "$mods" ] || { echo "vivid-check: FAIL: vivid.ko not in $MODDIR/modules.dep"; exit 1; }
for m in $mods; do
    mkdir -p "$IR/lib/modules/$KVER/$(dirname "$m")"
    cp "$MODDIR/$m" "$IR/lib/modules/$KVER/$m"
done
grep -F -f <(printf '%s:\n' $mods) "$MODDIR/modules.dep" >"$IR/lib/modules/$KVER/modules.dep" || true
# Shared libraries: the host's for perceptd (built here), the packages' for
# v4l2-ctl (host ones as fallback).
copy_libs() { # binary [LD_LIBRARY_PATH]
    LD_LIBRARY_PATH=${2:-} ldd "$1" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
        [ -f "$lib" ] || continue
        case "$lib" in /*) dst=$IR$lib ;; *) dst=$IR/lib/x86_64-linux-gnu/$(basename "$lib") ;; esac
        case "$lib" in "$X"/*) dst=$IR/lib/x86_64-linux-gnu/$(basename "$lib") ;; esac
        mkdir -p "$(dirname "$dst")"
        [ -f "$dst" ] || cp -L "$lib" "$dst"
    done
}
copy_libs "$BIN"
copy_libs "$X/usr/bin/v4l2-ctl" "$X/usr/lib/x86_64-linux-gnu:$X/lib/x86_64-linux-gnu"
if LD_LIBRARY_PATH="$X/usr/lib/x86_64-linux-gnu:$X/lib/x86_64-linux-gnu" ldd "$X/usr/bin/v4l2-ctl" | grep -q "not found"; then
    echo "vivid-check: FAIL: v4l2-ctl needs a library not found here"
    exit 1
fi
mkdir -p "$IR/lib64"
[ -e "$IR/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$IR/lib64/"
cat >"$IR/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
export PATH=/bin:/sbin:/usr/bin KVER=$KVER VIVID_CASES="${VIVID_CASES:-}"
if grep -q vivid.probe /proc/cmdline; then echo VIVID-GUEST-UP; poweroff -f; fi
echo VIVID-GUEST-UP
sh /cases.sh
echo "VIVID-END rc=\$?"
poweroff -f
EOF
chmod +x "$IR/init"
INITRD=$CACHE/initramfs.cpio
(cd "$IR" && find . | cpio -o -H newc --quiet) >"$INITRD"
log "initramfs $(du -k "$INITRD" | cut -f1) KiB, kernel $KVER"

# ---- QEMU -------------------------------------------------------------------
qemu() { # accel-args... -- extra cmdline
    local args=() app=""
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    app="$*"
    qemu-system-x86_64 "${args[@]}" -m 1536 -smp 2 -nographic -no-reboot \
        -kernel "$VMLINUZ" -initrd "$INITRD" -nic none \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 $app"
}
ACCEL=${VIVID_ACCEL:-auto}
TCG=(-accel tcg,thread=multi -cpu max)
KVM=(-accel kvm -cpu max)
choose=$ACCEL
if [ "$ACCEL" = auto ]; then
    choose=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        # Here (nested virtualisation) KVM with -cpu max aborts at once
        # ("failed to set MSR") and the default CPU model hangs after
        # "Probing EDD": either way the probe fails and TCG is used.
        probe=$(timeout 25 bash -c "$(declare -f qemu); $(declare -p VMLINUZ INITRD); qemu ${KVM[*]} -- vivid.probe=1" </dev/null 2>&1 | tr -d '\r' || true)
        if grep -q VIVID-GUEST-UP <<<"$probe"; then
            choose=kvm
        else
            log "KVM did not boot the kernel ($(tail -n 1 <<<"$probe" | cut -c1-120)); using software emulation (TCG)"
        fi
    fi
fi
if [ "$choose" = kvm ]; then ACC=("${KVM[@]}"); else ACC=("${TCG[@]}"); fi
log "booting $KVER under ${choose^^} ($(basename "$BIN"): $BIN)"
OUT=$CACHE/guest.log
set +e
timeout "${VIVID_TIMEOUT_S:-1500}" bash -c "$(declare -f qemu); $(declare -p VMLINUZ INITRD); qemu ${ACC[*]} --" </dev/null 2>&1 |
    tr -d '\r' | tee "$OUT" | grep --line-buffered -E '^(CASE|INFO|DETAIL) '
set -e
pass=$(grep -c '^CASE .* PASS' "$OUT" || true)
fail=$(grep -c '^CASE .* FAIL' "$OUT" || true)
secs=$(($(date +%s) - START))
if ! grep -q '^VIVID-END' "$OUT"; then
    echo "vivid-check: FAIL: the guest did not finish (timeout or crash); log: $OUT"
    tail -20 "$OUT"
    exit 1
fi
echo "vivid-check: $pass passed, $fail failed in ${secs} s (${choose}, kernel $KVER)"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
