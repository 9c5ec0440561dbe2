#!/usr/bin/env bash
# Checks that the README's set-up works on another machine and that the model says
# the same things there as on this x86-64 host. Not part of the test suite (minutes).
#
#   tools/emulate.sh pi        Debian bookworm arm64 (what 64-bit Raspberry Pi OS is
#                              built on), made with debootstrap and run under qemu-user:
#                              the README's set-up command, then `facecue-model eval` on a small
#                              set and `facecue run --source VIDEO --audio-out`, compared
#                              with this host's by `facecue-model compare-runs`: the same
#                              words in the same order and the same eval table, but for
#                              confidences and times within a tolerance (its --help says
#                              which and why); the audio bytes where the times match.
#   tools/emulate.sh deeplens  the AWS DeepLens path as far as it can be checked without
#                              an Ubuntu 16.04 root; names the step it cannot take.
#
# Needs root, debootstrap, qemu-user 8 or newer (bookworm's 7.2 crashed ai-edge-litert
# >= 2.2 on load here; bookworm-backports has 10), binfmt_misc, and this checkout's ./.venv.
# Run as root, it installs what is missing with apt (on bookworm: debootstrap, and
# qemu-user-static from bookworm-backports, which it adds to apt's sources), mounts
# binfmt_misc and registers qemu-aarch64; not as root, it prints the sudo command.
# The root is built once in $EMU_DIR (default /var/tmp/facecue-emu) and reused; delete
# it to start afresh. Extra CA certificates this host trusts (for a registry reached
# through a proxy) are copied into the root. The last line is `emulated pi: ok`, or
# names the step that failed; the exit status is 0 only when every step matched.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly EMU_DEFAULT=/var/tmp/facecue-emu
readonly EMU_DIR=${EMU_DIR:-$EMU_DEFAULT}
readonly HOST_VENV=$REPO/.venv
readonly SUITE=bookworm
readonly MIN_QEMU=8
readonly BACKPORTS_LIST=/etc/apt/sources.list.d/facecue-emu-backports.list
readonly EVAL_FACES=300      # every 12th validation face: all seven classes
readonly VIDEO_FPS=4
readonly VIDEO_ARGS=(--n 5 --seconds 4 --fps "$VIDEO_FPS")  # 104 frames, 2 words on x86-64: minutes, not an hour, under qemu
readonly CA_VARS=(PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE)
readonly PROXY_VARS=(http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY)

TARGET=${1:-}
STEP=arguments
MOUNTS=()
WORK=''
cleanup() { unmount_root; if [[ -n $WORK ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

say() { echo "==> $*"; }
note() { echo "    $*"; }
# fail WHY: the one line naming the step that failed, last.
fail() { echo "emulate.sh: error: $*" >&2; echo "emulated $TARGET: failed at step '$STEP'"; exit 1; }
# In the main shell only: a failure inside $(...) of a note must not print a verdict.
on_error() { local rc=$?; if ((BASHPID == $$)); then fail "command failed (exit $rc): $1"; fi; }
trap 'on_error "$BASH_COMMAND"' ERR

begin() { STEP=$1; say "$1"; STARTED=$SECONDS; }
took() { note "$STEP: $((SECONDS - STARTED)) s"; }

# ------------------------------------------------------------------ the host side

# sudo_line: the one command that runs this again as root, keeping the settings it reads.
sudo_line() {
    local var
    local -a keep=()
    if [[ $EMU_DIR != "$EMU_DEFAULT" ]]; then keep+=(EMU_DIR); fi
    for var in FACECUE_DATA "${CA_VARS[@]}" "${PROXY_VARS[@]}"; do
        if [[ -n ${!var:-} ]]; then keep+=("$var"); fi
    done
    local IFS=,
    printf 'sudo %s%q pi' "${keep[*]:+--preserve-env=${keep[*]} }" "$REPO/tools/emulate.sh"
}

qemu_major() { qemu-aarch64 --version 2>/dev/null | awk 'NR == 1 { split($3, v, "."); print v[1] + 0 }'; }

# install_host_tools: debootstrap and a qemu-user new enough, with apt. Bookworm's own
# qemu is 7.2, so there qemu-user-static comes from bookworm-backports (10.0 in 2025; a
# transitional package there for qemu-user, whose binaries are static, and
# qemu-user-binfmt); later Debian and Ubuntu releases have 8 or newer in their own archive.
install_host_tools() {
    command -v apt-get >/dev/null || fail "no apt-get: install debootstrap and qemu-user-static $MIN_QEMU or newer"
    local codename
    # shellcheck disable=SC1091  # the host's, read at run time
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    local -a from=()
    if [[ $codename == bookworm ]]; then
        from=(-t bookworm-backports)
        if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" >"$BACKPORTS_LIST"
            note "added bookworm-backports to apt's sources ($BACKPORTS_LIST)"
        fi
    fi
    note "apt-get install debootstrap qemu-user-static ${from[*]}"
    apt-get update -qq >"$EMU_DIR/apt.log" 2>&1 || fail "apt-get update failed; see $EMU_DIR/apt.log"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${from[@]}" debootstrap qemu-user-static \
        >>"$EMU_DIR/apt.log" 2>&1 || fail "apt-get install failed; see $EMU_DIR/apt.log"
}

# register_binfmt FRESH: binfmt_misc mounted and qemu-aarch64 registered with it; FRESH=1
# (qemu just installed) registers it again, since an F-flagged entry keeps the old binary open.
register_binfmt() {
    local fresh=$1 dir=/proc/sys/fs/binfmt_misc
    if [[ ! -e $dir/register ]]; then
        mount -t binfmt_misc binfmt_misc "$dir" || fail "cannot mount binfmt_misc at $dir"
        note "mounted binfmt_misc at $dir"
    fi
    if [[ -e $dir/qemu-aarch64 ]] && ((fresh)); then echo -1 >"$dir/qemu-aarch64"; fi
    if [[ ! -e $dir/qemu-aarch64 ]]; then
        [[ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]] || fail "no /usr/lib/binfmt.d/qemu-aarch64.conf (qemu-user-binfmt)"
        cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$dir/register"
        note "registered qemu-aarch64 with binfmt_misc"
    fi
    note "binfmt_misc runs arm64 programs with $(awk '/^interpreter/ { print $2 }' "$dir/qemu-aarch64")"
}

check_host() {
    begin "host tools"
    ((EUID == 0)) || fail "needs root (apt, debootstrap, chroot, binfmt_misc); run: $(sudo_line)"
    [[ -x $HOST_VENV/bin/facecue ]] || fail "no $HOST_VENV/bin/facecue: run the README's set-up here first"
    mkdir -p "$EMU_DIR"
    local installed=0
    if ! command -v debootstrap >/dev/null || (($(qemu_major || echo 0) < MIN_QEMU)); then
        install_host_tools
        installed=1
    fi
    local version
    version=$(qemu_major || true)
    ((${version:-0} >= MIN_QEMU)) || fail "qemu-aarch64 ${version:-not found}: needs $MIN_QEMU or newer (ai-edge-litert crashed under 7.2); install qemu-user-static"
    register_binfmt "$installed"
    note "qemu $(qemu-aarch64 --version | awk 'NR == 1 { print $3 }')"
}

# host_references DIR: the small evaluation set, the test video and what this host makes of them.
host_references() {
    begin "x86-64 references"
    local dir=$1 data=${FACECUE_DATA:-$REPO/../shared/data/fer2013}
    [[ -f $data/valid.npz ]] || fail "no $data/valid.npz (set FACECUE_DATA)"
    mkdir -p "$dir"
    : >"$dir/empty.toml"
    "$HOST_VENV/bin/python" - "$data/valid.npz" "$dir/small.npz" "$EVAL_FACES" <<'PY'
import sys
import numpy as np
data, step = np.load(sys.argv[1]), len(np.load(sys.argv[1])["labels"]) // int(sys.argv[3])
np.savez(sys.argv[2], images=data["images"][::step][: int(sys.argv[3])],
         labels=data["labels"][::step][: int(sys.argv[3])], classes=data["classes"])
PY
    (cd "$REPO" && "$HOST_VENV/bin/facecue-model" scenes video "${VIDEO_ARGS[@]}" --data "$data/valid.npz" \
        --out "$dir/scenes.avi" >/dev/null)
    run_checks "$HOST_VENV/bin/facecue" "$dir" "$dir/x86"
    note "$(grep '^accuracy' "$dir/x86.eval")"
    note "$(wc -l <"$dir/x86.log") announcements"
    took
}

# run_checks FACECUE DIR OUT: eval (FACECUE-model) and run, as the docs show them; OUT.eval, OUT.log, OUT.wav.
# DIR/empty.toml: the defaults, on both sides alike, whatever /etc/facecue holds.
run_checks() {
    local facecue=$1 dir=$2 out=$3
    "${facecue}-model" eval --data "$dir/small.npz" | tail -n +2 >"$out.eval"  # line 1 names the model's path
    "$facecue" run --source "$dir/scenes.avi" --audio-out "$out.wav" --config "$dir/empty.toml" >"$out.run" 2>&1
    sed -n 's/^.* INFO \(announce .*\)$/\1/p' "$out.run" >"$out.log"
}

# ------------------------------------------------------------------ the emulated root

# root_exec ROOT CMD...: CMD in ROOT, with a clean environment: the host's pip
# configuration (local wheel folders, indexes) means nothing there.
root_exec() {
    local root=$1; shift
    local -a env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 CI=true)
    local var
    for var in "${CA_VARS[@]}"; do
        if [[ -n ${!var:-} ]]; then env+=("$var=/etc/ssl/certs/ca-certificates.crt"); fi
    done
    for var in "${PROXY_VARS[@]}"; do
        if [[ -n ${!var:-} ]]; then env+=("$var=${!var}"); fi
    done
    chroot "$root" /usr/bin/env -i "${env[@]}" "$@"
}

mount_root() {
    local root=$1 dir
    for dir in proc sys dev dev/pts; do
        mountpoint -q "$root/$dir" && continue
        case $dir in
            proc) mount -t proc proc "$root/proc" ;;
            sys) mount -t sysfs sysfs "$root/sys" ;;
            *) mount --bind "/$dir" "$root/$dir" ;;
        esac
        MOUNTS=("$root/$dir" "${MOUNTS[@]}")
    done
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}

unmount_root() {
    local dir
    for dir in ${MOUNTS[@]+"${MOUNTS[@]}"}; do umount "$dir" || umount -l "$dir"; done
    MOUNTS=()
}

# build_root ROOT ARCH: a minimal Debian root, made once; the extra CAs brought in every time.
build_root() {
    local root=$1 arch=$2
    begin "debian $SUITE $arch root"
    if [[ -f $root/.facecue-emu ]]; then
        note "$root exists: reused"
    else
        rm -rf "$root"
        debootstrap --arch="$arch" --variant=minbase --include=ca-certificates "$SUITE" "$root" >"$root.debootstrap.log" 2>&1 \
            || fail "debootstrap failed; see $root.debootstrap.log"
        touch "$root/.facecue-emu"
    fi
    trust_host_cas "$root"
    took
}

# trust_host_cas ROOT: the extra CA certificates this host trusts, in ROOT's bundle too.
trust_host_cas() {
    local root=$1 cert missing=0
    local -a extra=()
    mapfile -t extra < <(find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | sort)
    ((${#extra[@]})) || return 0
    for cert in "${extra[@]}"; do
        grep -qF "$(sed -n 2p "$cert")" "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || missing=1
    done
    if ((missing)); then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp "${extra[@]}" "$root/usr/local/share/ca-certificates/"
        mount_root "$root"
        root_exec "$root" update-ca-certificates >/dev/null
    fi
    note "this host's extra CA certificates are trusted there: $(basename -a "${extra[@]}" | tr '\n' ' ')"
}

# copy_checkout ROOT: the tracked files at /src, keeping the .venv an earlier run made.
copy_checkout() {
    local root=$1
    begin "checkout into the root"
    mkdir -p "$root/src"
    find "$root/src" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
    (cd "$REPO" && git ls-files -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$root/src" -xf -
    note "$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo ' with uncommitted changes')"
    took
}

# readme_setup: the laptop/CI set-up command from the README's "The three commands" table.
readme_setup() {
    grep '^| set up |' "$REPO/README.md" | grep -o '\./install\.sh --no-service[^`]*' | head -n 1
}

setup_in_root() {
    local root=$1 command
    command=$(readme_setup)
    [[ -n $command ]] || fail "no './install.sh --no-service ...' in the README's set-up row"
    begin "README set-up: $command"
    mount_root "$root"
    root_exec "$root" bash -c "cd /src && $command" >"$root.setup.log" 2>&1 \
        || fail "the set-up failed: $(grep 'install.sh: error' "$root.setup.log" | tail -n 1); see $root.setup.log"
    note "$(grep -E '^==> done in' "$root.setup.log")"
    took
}

checks_in_root() {
    local root=$1 refs=$2
    begin "facecue-model eval and facecue run in the root"
    mkdir -p "$root/tmp/emu"
    cp "$refs/small.npz" "$refs/scenes.avi" "$refs/empty.toml" "$root/tmp/emu/"
    root_exec "$root" bash -c "$(declare -f run_checks); run_checks /src/.venv/bin/facecue /tmp/emu /tmp/emu/arm64"
    note "$(grep '^accuracy' "$root/tmp/emu/arm64.eval")"
    took
    STEP="compare with x86-64"
    say "$STEP"
    local emulated=$root/tmp/emu/arm64
    "$HOST_VENV/bin/facecue-model" compare-runs --fps "$VIDEO_FPS" --eval "$refs/x86.eval" "$emulated.eval" \
        --log "$refs/x86.log" "$emulated.log" --audio "$refs/x86.wav" "$emulated.wav" | sed 's/^/    /' \
        || fail "arm64 says other things than x86-64 (the lines marked differs: above)"
}

emulate_pi() {
    local root=$EMU_DIR/pi-root
    check_host
    host_references "$EMU_DIR/ref"
    build_root "$root" arm64
    copy_checkout "$root"
    setup_in_root "$root"
    checks_in_root "$root" "$EMU_DIR/ref"
}

# ------------------------------------------------------------------ the DeepLens

# stand_in DIR NAME TEXT: a command NAME in DIR that prints TEXT (and takes any arguments).
stand_in() { printf '#!/bin/sh\necho "%s"\n' "$3" >"$1/$2"; chmod +x "$1/$2"; }

emulate_deeplens() {
    WORK=$(mktemp -d)
    local work=$WORK
    mkdir "$work/bin"
    stand_in "$work/bin" systemctl "systemd 229"

    begin "units for systemd 229"
    local unit name
    for unit in "$REPO"/systemd/*; do
        name=$(basename "$unit")
        PATH=$work/bin:$PATH bash "$REPO/install.sh" --print-unit "$name" \
            | sed "s|^ExecStart=[^ ]*|ExecStart=$(command -v true)|" >"$work/$name"
        if [[ $(head -n 1 "$work/$name") == "# install.sh: "* ]]; then
            note "$name: $(head -n 1 "$work/$name" | cut -c 15-)"
        else
            note "$name: unchanged"
        fi
    done
    if command -v systemd-analyze >/dev/null; then
        systemd-analyze verify "$work"/*.service "$work"/*.timer 2>&1 | grep facecue && fail "systemd-analyze verify objects"
        note "they verify with this host's systemd $(systemctl --version | awk 'NR == 1 { print $2 }') (not 229's: none here)"
    fi

    begin "install.sh with the DeepLens's Python 3.5"
    # shellcheck disable=SC2016  # "$2" is the stand-in's own argument
    printf '#!/bin/sh\ncase "$2" in *sys.exit*) exit 1;; *) echo 3.5.2;; esac\n' >"$work/python3.5"
    chmod +x "$work/python3.5"
    local refusal
    refusal=$(PATH=$work/bin:$PATH PYTHON=$work/python3.5 CI=true bash "$REPO/install.sh" --dry-run 2>&1 >/dev/null) \
        && fail "install.sh accepted Python 3.5"
    [[ $refusal == *"PYTHON="* && $(wc -l <<<"$refusal") == 1 ]] || fail "not one line naming PYTHON=: $refusal"
    note "$refusal"

    begin "install.sh with PYTHON= another CPython 3.11"
    local python
    python=$(command -v /usr/bin/python3.11 python3.11 | head -n 1 || true)
    [[ -n $python ]] || fail "no python3.11 on this host to stand in for a standalone CPython"
    PATH=$work/bin:$PATH PYTHON=$python CI=true bash "$REPO/install.sh" --dry-run >"$work/dry.log" 2>&1 \
        || fail "the dry run failed: $(tail -n 1 "$work/dry.log")"
    grep -q "$python -m venv" "$work/dry.log" || fail "the venv is not made with $python"
    note "the service venv is made with $python"

    begin "wheels for glibc 2.23 (Ubuntu 16.04), CPython 3.11, x86-64"
    local -a platforms=() deps=()
    local v
    for v in 23 22 21 20 19 18 17; do platforms+=(--platform "manylinux_2_${v}_x86_64"); done
    mapfile -t deps < <("$HOST_VENV/bin/python" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith("pyaudio")))  # pyaudio is built from source on any machine
PY
    )
    "$HOST_VENV/bin/python" -m pip install --isolated --dry-run --ignore-installed --only-binary=:all: \
        --python-version 3.11 "${platforms[@]}" --target "$work/wheels" "${deps[@]}" >"$work/wheels.log" 2>&1 \
        || fail "$(grep -m1 ERROR "$work/wheels.log")"
    note "$(grep -o 'Would install.*' "$work/wheels.log" | cut -c 1-200)"

    STEP="ubuntu 16.04 root"
    say "$STEP"
    fail "not built here: it needs Ubuntu's archive (debootstrap xenial) and a standalone CPython 3.11 build, and this script has neither; the install, eval and run on the DeepLens's own OS were not tried"
}

case $TARGET in
    pi) emulate_pi ;;
    deeplens) emulate_deeplens ;;
    *) echo "usage: tools/emulate.sh pi|deeplens" >&2; exit 2 ;;
esac
echo "emulated $TARGET: ok"
