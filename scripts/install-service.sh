#!/usr/bin/env bash
# Installs perceptd as a systemd service, or removes what it installed.
#
#   scripts/install-service.sh               install (or upgrade)
#   scripts/install-service.sh --uninstall   remove everything the install created
#   scripts/install-service.sh --uninstall --purge
#                                            also an edited /etc/perceptd/default.toml
#                                            and the service's data (/var/log/perceptd,
#                                            /var/lib/perceptd, /var/cache/perceptd)
#
# What goes where (PREFIX defaults to /usr/local):
#   binary   -> $PREFIX/bin/perceptd
#   model, labels, calibration -> $PREFIX/share/perceptd/
#   README   -> $PREFIX/share/doc/perceptd/README.md
#   units    -> /etc/systemd/system/perceptd.service, perceptd@.service
#   config   -> /etc/perceptd/default.toml (an existing one is kept)
#   user     -> perceptd (system user, member of video), if missing
#   manifest -> $PREFIX/share/perceptd/install-manifest: every file, folder
#               and user the install created; --uninstall removes exactly those.
#
# Build: target/release/perceptd is rebuilt first when it is missing or older
# than a source (src/, Cargo.toml, Cargo.lock, build.rs, and calibration/ and
# models/, which the binary embeds). cargo only ever runs as the owner of the
# checkout: run this script as yourself and it builds, then re-runs the
# install step under sudo; run it as root (sudo) with a stale binary and it
# stops, printing the build command to run first. Root never needs cargo.
#
# DESTDIR=/some/dir stages the install under that root instead: no root
# needed, no user created, no systemctl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}

mode=install
purge=0
for arg in "$@"; do
    case "$arg" in
    --uninstall) mode=uninstall ;;
    --purge) purge=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "error: unknown argument '$arg' (expected --uninstall, --purge or --help)" >&2
        exit 2
        ;;
    esac
done
if [ "$purge" = 1 ] && [ "$mode" != uninstall ]; then
    echo "error: --purge goes with --uninstall" >&2
    exit 2
fi

share="$PREFIX/share/perceptd"
manifest="$share/install-manifest"
unitdir=/etc/systemd/system
cfg=/etc/perceptd/default.toml

# Installing into the real / as a user: re-run this script under sudo (the
# build, if one was needed, has already run as this user).
as_root() {
    [ -n "$DESTDIR" ] && return 0
    [ "$(id -u)" -eq 0 ] && return 0
    if ! command -v sudo >/dev/null 2>&1; then
        echo "error: writing to $PREFIX and /etc needs root, and sudo is not installed: run as root, or set DESTDIR to stage the install" >&2
        exit 1
    fi
    echo "the $mode step needs root: running it under sudo" >&2
    exec sudo env PREFIX="$PREFIX" bash "$repo/scripts/install-service.sh" "$@"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[|&\\]/\\&/g'; }

# ------------------------------------------------------------------ uninstall
if [ "$mode" = uninstall ]; then
    as_root "$@"
    m="$DESTDIR$manifest"
    if [ ! -f "$m" ]; then
        echo "error: $m not found: nothing was installed under DESTDIR='$DESTDIR' PREFIX=$PREFIX (set the same DESTDIR/PREFIX as for the install)" >&2
        exit 1
    fi
    if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1; then
        units=$(systemctl list-units --all --plain --no-legend 'perceptd.service' 'perceptd@*.service' 2>/dev/null | awk '{print $1}')
        for u in $units; do
            systemctl disable --now "$u" >/dev/null 2>&1 || systemctl stop "$u" || true
        done
        systemctl disable perceptd.service >/dev/null 2>&1 || true
        # Enabled instances that are not loaded: their wants/ links.
        find "$unitdir" -path "$unitdir/*.wants/perceptd*.service" -type l -print -delete 2>/dev/null || true
    fi
    # Files first, then the folders the install created (deepest first).
    while read -r kind path sum; do
        case "$kind" in
        file)
            rm -f "$DESTDIR$path" && echo "removed $DESTDIR$path"
            ;;
        config)
            f="$DESTDIR$path"
            [ -e "$f" ] || continue
            if [ "$purge" = 1 ] || [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$sum" ]; then
                rm -f "$f" && echo "removed $f"
            else
                echo "kept $f: edited since the install; delete it by hand if unwanted (--uninstall --purge removes it with the rest)"
            fi
            ;;
        esac
    done <"$m"
    created_dirs=$(tac "$m.dirs" 2>/dev/null || true)
    created_user=$(grep -x 'user perceptd' "$m.users" 2>/dev/null || true)
    rm -f "$m" "$m.dirs" "$m.users" && echo "removed $m, $m.dirs, $m.users"
    for d in $created_dirs; do
        if rmdir "$DESTDIR$d" 2>/dev/null; then echo "removed $DESTDIR$d/"; fi
    done
    if [ -z "$DESTDIR" ]; then
        if [ -n "$created_user" ] && id perceptd >/dev/null 2>&1; then
            userdel perceptd && echo "removed user perceptd"
        fi
        if [ "$purge" = 1 ]; then
            for d in /var/log/perceptd /var/lib/perceptd /var/cache/perceptd /var/lib/private/perceptd; do
                [ -e "$d" ] && rm -rf "$d" && echo "removed $d"
            done
        else
            for d in /var/log/perceptd /var/lib/perceptd /var/cache/perceptd; do
                [ -e "$d" ] && echo "left $d (the service's data; --uninstall --purge removes it)"
            done
        fi
        if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload || true; fi
    fi
    echo "uninstalled"
    exit 0
fi

# ---------------------------------------------------------------- build check
bin=target/release/perceptd
sources=(src Cargo.toml Cargo.lock)
for p in build.rs calibration models; do
    [ -e "$p" ] && sources+=("$p")
done
stale=""
if [ ! -x "$bin" ]; then
    stale="$bin does not exist"
else
    newer=$(find "${sources[@]}" -type f -newer "$bin" -print -quit)
    [ -n "$newer" ] && stale="$newer is newer than $bin"
fi
if [ -n "$stale" ]; then
    owner_uid=$(stat -c %u "$repo")
    owner=$(stat -c %U "$repo")
    if [ "$(id -u)" -ne "$owner_uid" ]; then
        cat >&2 <<EOF
error: $stale, and this script builds only as $owner, who owns $repo
(cargo as $(id -un) would leave files in target/ that $owner cannot replace).
Build first, as $owner:
    cd $repo && cargo build --release --locked
then run this script again.
EOF
        exit 1
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        cat >&2 <<EOF
error: $stale, and cargo is not on PATH ($PATH).
Build first, as the user who has Rust (https://rustup.rs):
    cd $repo && cargo build --release --locked
then run this script again (it asks sudo for the install step itself).
EOF
        exit 1
    fi
    echo "building: $stale" >&2
    cargo build --release --locked
    # cargo relinks only when the code changed; a touched-but-equal file
    # must not make every later run rebuild.
    touch "$bin"
fi

# -------------------------------------------------------------------- install
as_root "$@"
# The staging root itself is the caller's: made if missing, never removed.
[ -n "$DESTDIR" ] && install -d -m755 "$DESTDIR"
m="$DESTDIR$manifest"
new=$(mktemp)
dirs=$(mktemp)
trap 'rm -f "$new" "$dirs"' EXIT
# An upgrade keeps what the earlier install created.
[ -f "$m.dirs" ] && cat "$m.dirs" >>"$dirs"

# Records every folder on the way to $1 that does not exist yet.
make_dirs() {
    local d=$1 missing=()
    while [ "$d" != / ] && [ "$d" != . ] && [ ! -d "$DESTDIR$d" ]; do
        missing+=("$d")
        d=$(dirname "$d")
    done
    local i
    for ((i = ${#missing[@]} - 1; i >= 0; i--)); do
        install -d -m755 "$DESTDIR${missing[i]}"
        echo "${missing[i]}" >>"$dirs"
    done
}
# put MODE SRC DEST: installs SRC as DEST (DEST without DESTDIR).
put() {
    make_dirs "$(dirname "$3")"
    install -m "$1" "$2" "$DESTDIR$3"
    echo "file $3" >>"$new"
}
# filtered MODE SRC DEST SED-SCRIPT
filtered() {
    make_dirs "$(dirname "$3")"
    sed -e "$4" "$2" >"$DESTDIR$3"
    chmod "$1" "$DESTDIR$3"
}

put 755 "$bin" "$PREFIX/bin/perceptd"
put 644 models/perceptd-synth.onnx "$share/models/perceptd-synth.onnx"
[ -f models/perceptd-synth.labels ] && put 644 models/perceptd-synth.labels "$share/models/perceptd-synth.labels"
put 644 calibration/front_camera.yaml "$share/calibration/front_camera.yaml"
put 644 README.md "$PREFIX/share/doc/perceptd/README.md"
for u in perceptd.service perceptd@.service; do
    filtered 644 "systemd/$u" "$unitdir/$u" "s|/usr/local/|$(sed_escape "$PREFIX")/|g"
    echo "file $unitdir/$u" >>"$new"
done
# The config: only quoted "@SHARE@/..." values are paths to fill in.
if [ -e "$DESTDIR$cfg" ]; then
    echo "keeping existing $DESTDIR$cfg"
    # Ours from an earlier install stays ours (removed if unedited).
    [ -f "$m" ] && grep "^config $cfg " "$m" >>"$new" || true
else
    filtered 644 systemd/default.toml "$cfg" "s|\"@SHARE@/|\"$(sed_escape "$share")/|g"
    echo "config $cfg $(sha256sum <"$DESTDIR$cfg" | cut -d' ' -f1)" >>"$new"
fi
if grep -n '@SHARE@' "$DESTDIR$cfg" | grep -v '^[0-9]*:#' >/dev/null; then
    echo "warning: $DESTDIR$cfg still has @SHARE@ outside comments" >&2
fi

users=""
if [ -z "$DESTDIR" ]; then
    if ! id perceptd >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /var/lib/perceptd \
            --shell /usr/sbin/nologin --user-group --groups video perceptd
        users="user perceptd"
    fi
fi
make_dirs "$share"
awk '!seen[$0]++' "$new" >"$m"
awk '!seen[$0]++' "$dirs" >"$m.dirs"
{
    [ -f "$m.users" ] && cat "$m.users"
    [ -n "$users" ] && echo "$users"
} | awk 'NF && !seen[$0]++' >"$m.users.tmp" || true
mv "$m.users.tmp" "$m.users"
chmod 644 "$m" "$m.dirs" "$m.users"
if [ -z "$DESTDIR" ]; then
    systemctl daemon-reload
    echo "installed; start with: systemctl enable --now perceptd"
else
    echo "staged under $DESTDIR (manifest $m); remove with: DESTDIR=$DESTDIR scripts/install-service.sh --uninstall"
fi
