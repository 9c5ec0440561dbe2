#!/usr/bin/env bash
# Sets facecue up on a Raspberry Pi, an x86 Debian/Ubuntu box, a laptop or CI.
#
# Two layouts, so that the service never runs code out of someone's home
# directory (the unit has ProtectHome=yes) and a developer never needs root:
#   ./install.sh               device: a non-editable install in /opt/facecue/venv,
#                              `facecue` on the PATH, the `facecue` user, the config
#                              in /etc/facecue and the systemd units, enabled.
#   ./install.sh --no-service  laptop/container/CI: an editable install in ./.venv.
# Both install the apt packages that are missing. Running it again only does
# what changed; --uninstall takes back what it added.
set -Eeuo pipefail
umask 022  # the service user must be able to read the venv root installs

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly REPO
readonly PREFIX=/opt/facecue
readonly SERVICE_VENV=$PREFIX/venv
readonly DEV_VENV=$REPO/.venv
readonly CONFIG_DIR=/etc/facecue
readonly CONFIG=$CONFIG_DIR/config.toml
readonly STATE_DIR=/var/lib/facecue
readonly UNIT_DIR=/etc/systemd/system
readonly BIN_LINK=/usr/local/bin/facecue
readonly SERVICE_USER=facecue
readonly DEVICE_GROUPS=(video audio gpio)
readonly MAIN_UNIT=facecue.service
readonly SYNC_UNITS=(facecue-sync.service facecue-sync.timer)
readonly CREATED_MARK=.facecue-created    # in a venv: this script made it, --uninstall may delete it
readonly STAMP=.facecue-installed         # in a venv: what was installed last, to skip a redundant pip run
readonly APT_COMMON=(python3-venv python3-dev build-essential portaudio19-dev espeak-ng alsa-utils)
readonly APT_PI=(python3-picamera2 python3-lgpio)  # from apt: libcamera has no PyPI wheels

usage() {
    cat <<EOF
Usage: ./install.sh [options]

Sets up facecue from this checkout.

  (no option)      device install: apt packages, a venv in $SERVICE_VENV with the
                   package (not editable), $BIN_LINK, the '$SERVICE_USER' user
                   (groups ${DEVICE_GROUPS[*]}, where they exist), a default
                   $CONFIG if there is none, and the systemd units
                   ($MAIN_UNIT, plus ${SYNC_UNITS[*]} when present), enabled
                   and started. Needs root (uses sudo when not root).
  --no-service     laptop, container, CI: apt packages and an editable install in
                   ./.venv; touches nothing else.
  --extras LIST    comma-separated pip extras (pi, train, cloud, dev); default: cloud,
                   and dev,cloud with --no-service (so the tests run; those that need
                   TensorFlow skip). '' for none. CI and training: --extras dev,train,cloud
  --uninstall      stop and remove the units, the user, $PREFIX, $BIN_LINK and the
                   ./.venv this script made. Keeps $CONFIG_DIR and $STATE_DIR
                   (synced models). apt packages are left alone.
  --purge          with --uninstall: also delete $CONFIG_DIR and $STATE_DIR.
  --dry-run        print what would be done, change nothing.
  -h, --help       this text.

On a Raspberry Pi (/etc/rpi-issue, or 'Raspberry Pi' in /proc/device-tree/model)
it also installs ${APT_PI[*]} from apt and makes the venv with
--system-site-packages so they are importable. FACECUE_PLATFORM=pi|debian
overrides the detection; PYTHON=/path/to/python3.11+ picks the interpreter
(default: /usr/bin/python3 for the service, python3 for --no-service).
It never prompts: apt and pip run non-interactively, and sudo runs with -n when
CI=true or there is no terminal.
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
warn() { echo "install.sh: warning: $*" >&2; }
step() { echo "==> $*"; }
note() { echo "    $*"; }
# Any other failure: one line naming the command (the one run() ran, if it was that), and its status.
FAILED=
on_error() { local rc=$?; echo "install.sh: error: command failed (exit $rc): ${FAILED:-$1}" >&2; exit "$rc"; }
trap 'on_error "$BASH_COMMAND"' ERR

SERVICE=1 UNINSTALL=0 PURGE=0 DRY_RUN=0 EXTRAS= EXTRAS_SET=0
while (($#)); do
    case $1 in
        --no-service) SERVICE=0 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --extras) (($# >= 2)) || die "--extras needs a value, e.g. --extras dev,cloud"
                  EXTRAS=$2 EXTRAS_SET=1; shift ;;
        --extras=*) EXTRAS=${1#--extras=} EXTRAS_SET=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
if ((EXTRAS_SET == 0)); then
    if ((SERVICE)); then EXTRAS=cloud; else EXTRAS=dev,cloud; fi
fi
[[ $EXTRAS =~ ^([a-z0-9_-]+(,[a-z0-9_-]+)*)?$ ]] || die "--extras must look like 'dev,cloud', got '$EXTRAS'"
((PURGE == 0 || UNINSTALL == 1)) || die "--purge only goes with --uninstall"

noninteractive() { [[ ${CI:-} == true || ! -t 0 ]]; }
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# run CMD...: do it (echoed), or only say it under --dry-run. Returns its status,
# so `run x || warn ...` can tolerate a failure; anywhere else it stops the script.
run() {
    local shown rc=0
    shown=$(printf '%q ' "$@")
    shown=${shown% }
    FAILED=
    if ((DRY_RUN)); then echo "    would run: $shown"; return; fi
    echo "    + $shown"
    "$@" || rc=$?
    if ((rc)); then FAILED=$shown; fi
    return "$rc"
}

# as_root CMD...: run as root, through sudo when we are not.
as_root() {
    if ((EUID == 0)); then
        run "$@"
    elif command -v sudo >/dev/null; then
        if noninteractive; then run sudo -n "$@"; else run sudo "$@"; fi
    else
        die "root is needed for '$*'; run as root or install sudo"
    fi
}

is_pi() {
    case ${FACECUE_PLATFORM:-auto} in
        pi) return 0 ;;
        debian) return 1 ;;
        auto) [[ -e /etc/rpi-issue ]] || grep -qas "Raspberry Pi" /proc/device-tree/model ;;
        *) die "FACECUE_PLATFORM must be pi, debian or auto, got '$FACECUE_PLATFORM'" ;;
    esac
}

systemd_running() { [[ -d /run/systemd/system ]]; }

# ---------------------------------------------------------------- install steps

install_apt_packages() {
    local -a wanted=("${APT_COMMON[@]}") missing=()
    if is_pi; then wanted+=("${APT_PI[@]}"); fi
    step "apt packages: ${wanted[*]}"
    if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
        warn "no apt here; make sure the equivalents of these are installed: ${wanted[*]}"
        return
    fi
    local pkg
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        note "all present"
        return
    fi
    note "missing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# check_python PY: Python 3.11+ (tomllib, the typing the code uses) or a one-line error.
check_python() {
    local py=$1
    if ! command -v "$py" >/dev/null; then
        if ((DRY_RUN)); then note "$py is not there yet (apt would bring it)"; return; fi
        die "$py not found; install Python 3.11 or newer (or set PYTHON=)"
    fi
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); facecue needs 3.11 or newer"
    if [[ -n $EXTRAS ]]; then
        local unknown
        unknown=$("$py" - "$REPO/pyproject.toml" "$EXTRAS" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    known = tomllib.load(f)["project"].get("optional-dependencies", {})
bad = [e for e in sys.argv[2].split(",") if e not in known]
print(f"{', '.join(bad)} (known: {', '.join(known)})" if bad else "")
PY
        )
        [[ -z $unknown ]] || die "unknown pip extra $unknown"
    fi
}

# make_venv PRIV VENV PY: create VENV (PRIV is run or as_root), or keep a working one.
make_venv() {
    local priv=$1 venv=$2 py=$3 site=false
    local -a opts=()
    if is_pi; then site=true; opts+=(--system-site-packages); fi
    step "virtual environment $venv (python $py${opts:+, ${opts[*]}})"
    if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        if grep -qs "include-system-site-packages = $site" "$venv/pyvenv.cfg"; then
            note "exists"
            return
        fi
        if [[ ! -e $venv/$CREATED_MARK ]]; then
            warn "$venv was not made by install.sh and has include-system-site-packages != $site; keeping it"
            return
        fi
        note "system-site-packages setting changed: making it again"
    elif [[ -e $venv ]]; then
        [[ -e $venv/$CREATED_MARK ]] || die "$venv exists but is not a working venv; remove it and run again"
        note "broken (was its Python removed?): making it again"
    fi
    if [[ -e $venv ]]; then $priv rm -rf "$venv"; fi
    $priv "$py" -m venv "${opts[@]}" "$venv"
    $priv touch "$venv/$CREATED_MARK"
}

# source_stamp DIR [FILE...]: one hash naming what an install from DIR would put in a venv.
source_stamp() {
    local dir=$1; shift
    { echo "extras=$EXTRAS"; (cd "$dir" && find "$@" -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum); } \
        | sha256sum | cut -d' ' -f1
}

# pip_install PRIV VENV STAMP TARGET [PIP-OPTION...]: pip install TARGET unless STAMP says it is there.
pip_install() {
    local priv=$1 venv=$2 stamp=$3 target=$4; shift 4
    step "package $(with_extras facecue) into $venv"
    if [[ -f $venv/$STAMP && $(<"$venv/$STAMP") == "$stamp" ]]; then
        note "up to date"
        return
    fi
    $priv "$venv/bin/python" -m pip install "$@" "$target"
    if ((DRY_RUN)); then
        note "would record the install stamp in $venv/$STAMP"
    else
        echo "$stamp" | $priv tee "$venv/$STAMP" >/dev/null
    fi
    CHANGED=1
}

with_extras() { if [[ -n $EXTRAS ]]; then echo "$1[$EXTRAS]"; else echo "$1"; fi; }

install_dev() {
    local py=${PYTHON:-python3}
    check_python "$py"
    make_venv run "$DEV_VENV" "$py"
    pip_install run "$DEV_VENV" "$(source_stamp "$REPO" pyproject.toml)" "$(with_extras "$REPO")" -e
}

# A clean copy of the checkout, so the non-editable build neither reads a stale
# build/ nor leaves root-owned build files in the user's tree.
SOURCE_COPY=
clean_source_copy() {
    SOURCE_COPY=$(mktemp -d "${TMPDIR:-/tmp}/facecue-src.XXXXXX")
    trap 'rm -rf "$SOURCE_COPY"' EXIT
    tar -C "$REPO" --exclude='./.?*' --exclude=./build --exclude=./dist --exclude=./runs \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$SOURCE_COPY" -xf -
}

ensure_user() {
    step "system user $SERVICE_USER"
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        note "exists"
    else
        as_root useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "facecue daemon" "$SERVICE_USER"
    fi
    local group member_of
    member_of=" $(id -nG "$SERVICE_USER" 2>/dev/null || true) "
    for group in "${DEVICE_GROUPS[@]}"; do
        if ! getent group "$group" >/dev/null; then
            note "no '$group' group on this system: skipped"
        elif [[ $member_of == *" $group "* ]]; then
            note "in group $group"
        else
            as_root usermod -aG "$group" "$SERVICE_USER"
        fi
    done
}

ensure_command_link() {
    step "command $BIN_LINK -> $SERVICE_VENV/bin/facecue"
    if [[ $(readlink "$BIN_LINK" 2>/dev/null) == "$SERVICE_VENV/bin/facecue" ]]; then
        note "exists"
    elif [[ -e $BIN_LINK || -L $BIN_LINK ]]; then
        warn "$BIN_LINK exists and is not ours; left alone (use $SERVICE_VENV/bin/facecue)"
    else
        as_root ln -s "$SERVICE_VENV/bin/facecue" "$BIN_LINK"
    fi
}

ensure_config() {
    step "config $CONFIG"
    local facecue=$SERVICE_VENV/bin/facecue
    if [[ -e $CONFIG ]]; then
        note "exists: kept as it is"
        if [[ $(stat -c %G "$CONFIG") == UNKNOWN ]]; then  # its group went with an earlier --uninstall
            as_root chgrp "$SERVICE_USER" "$CONFIG"
        fi
        if [[ -x $facecue ]] && ! "$facecue" config --check "$CONFIG" >/dev/null; then
            warn "$CONFIG has an error (see above); the service will not start until it is fixed"
        fi
        return
    fi
    if ((DRY_RUN)); then
        note "would write the output of 'facecue config --print-default' (mode 0640, root:$SERVICE_USER)"
        return
    fi
    local draft
    draft=$(mktemp)
    "$facecue" config --print-default >"$draft"
    "$facecue" config --check "$draft" >/dev/null
    as_root install -d -m 0755 "$CONFIG_DIR"
    as_root install -m 0640 -o root -g "$SERVICE_USER" "$draft" "$CONFIG.new"
    as_root mv -n "$CONFIG.new" "$CONFIG"  # -n: a config that appeared meanwhile wins
    if [[ -e $CONFIG.new ]]; then as_root rm -f "$CONFIG.new"; fi
    rm -f "$draft"
}

# install_unit NAME: copy systemd/NAME into $UNIT_DIR atomically when it differs.
install_unit() {
    local name=$1 src=$REPO/systemd/$1 dest=$UNIT_DIR/$1
    if cmp -s "$src" "$dest"; then
        note "$dest is up to date"
        return
    fi
    as_root install -m 0644 -o root -g root "$src" "$dest.new"
    as_root mv -f "$dest.new" "$dest"
    UNITS_CHANGED=1
}

# enable_unit NAME: enabled at boot, and (where systemd runs) started; restarted if it changed.
enable_unit() {
    local name=$1
    if systemctl is-enabled --quiet "$name" 2>/dev/null; then
        note "$name is enabled"
    else
        as_root systemctl enable "$name"
    fi
    if ! systemd_running; then
        note "systemd is not running here: $name starts at the next boot"
    elif ((CHANGED || UNITS_CHANGED)) && systemctl is-active --quiet "$name"; then
        as_root systemctl restart "$name"
    elif ! systemctl is-active --quiet "$name"; then
        as_root systemctl start "$name"
    else
        note "$name is running"
    fi
}

install_service() {
    command -v systemctl >/dev/null || die "systemctl not found; without systemd use --no-service"
    if ((EUID != 0)) && ! command -v sudo >/dev/null; then
        die "the service install needs root: run as root, or use --no-service"
    fi
    local py=${PYTHON:-/usr/bin/python3}
    case $py in /root/*|/home/*) warn "$py lives in a home directory the service cannot read (ProtectHome=yes)" ;; esac
    [[ -f $REPO/systemd/$MAIN_UNIT ]] || die "systemd/$MAIN_UNIT is missing from $REPO"
    compgen -G "$REPO/models/*.tflite" >/dev/null \
        || warn "no .tflite in models/ yet: the service will wait for one (facecue sync, or re-run install.sh)"
    check_python "$py"
    ensure_user
    if [[ ! -d $PREFIX ]]; then as_root install -d -m 0755 "$PREFIX"; fi
    make_venv as_root "$SERVICE_VENV" "$py"
    clean_source_copy
    pip_install as_root "$SERVICE_VENV" "$(source_stamp "$SOURCE_COPY" .)" "$(with_extras "$SOURCE_COPY")"
    ensure_command_link
    ensure_config

    step "systemd units in $UNIT_DIR"
    local -a units=("$MAIN_UNIT") unit
    if [[ -f $REPO/systemd/${SYNC_UNITS[0]} && -f $REPO/systemd/${SYNC_UNITS[1]} ]]; then
        units+=("${SYNC_UNITS[@]}")
    else
        note "no ${SYNC_UNITS[*]} in systemd/: model sync timer not installed"
    fi
    for unit in "${units[@]}"; do install_unit "$unit"; done
    if ((UNITS_CHANGED)) && systemd_running; then as_root systemctl daemon-reload; fi
    step "enable"
    enable_unit "$MAIN_UNIT"
    if ((${#units[@]} > 1)); then enable_unit "${SYNC_UNITS[1]}"; fi
}

# -------------------------------------------------------------------- uninstall

uninstall() {
    local unit removed=0
    step "systemd units"
    for unit in "$MAIN_UNIT" "${SYNC_UNITS[@]}"; do
        [[ -e $UNIT_DIR/$unit ]] || continue
        if systemd_running; then
            as_root systemctl disable --now "$unit" || warn "could not stop $unit"
        else
            as_root systemctl disable "$unit" || warn "could not disable $unit"
        fi
        as_root rm -f "$UNIT_DIR/$unit"
        removed=1
    done
    if ((removed)); then
        if systemd_running; then as_root systemctl daemon-reload; fi
    else
        note "none installed"
    fi

    step "$BIN_LINK and $PREFIX"
    if [[ $(readlink "$BIN_LINK" 2>/dev/null) == "$PREFIX/"* ]]; then as_root rm -f "$BIN_LINK"; fi
    if [[ -e $PREFIX ]]; then as_root rm -rf "$PREFIX"; else note "$PREFIX not there"; fi

    step "$DEV_VENV"
    if [[ -e $DEV_VENV/$CREATED_MARK ]]; then
        run rm -rf "$DEV_VENV"
    elif [[ -e $DEV_VENV ]]; then
        note "not made by install.sh: kept"
    else
        note "not there"
    fi

    step "system user $SERVICE_USER"
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        as_root userdel "$SERVICE_USER"  # also drops its own group (USERGROUPS_ENAB)
    elif getent group "$SERVICE_USER" >/dev/null; then
        as_root groupdel "$SERVICE_USER"
    else
        note "not there"
    fi

    step "$CONFIG_DIR and $STATE_DIR"
    if ((PURGE)); then
        local dir
        for dir in "$CONFIG_DIR" "$STATE_DIR"; do
            if [[ -e $dir ]]; then as_root rm -rf "$dir"; else note "$dir not there"; fi
        done
    else
        note "kept (use --uninstall --purge to delete the config and synced models)"
    fi
}

# ------------------------------------------------------------------------- main

START=$SECONDS CHANGED=0 UNITS_CHANGED=0
if ((DRY_RUN)); then echo "dry run: nothing will be changed"; fi
if is_pi; then PLATFORM="Raspberry Pi"; else PLATFORM="Debian/Ubuntu (not a Pi)"; fi

if ((UNINSTALL)); then
    step "uninstalling facecue from $PLATFORM"
    uninstall
else
    step "installing facecue on $PLATFORM from $REPO"
    [[ -f $REPO/pyproject.toml ]] || die "no pyproject.toml in $REPO; run install.sh from the facecue checkout"
    install_apt_packages
    if ((SERVICE)); then install_service; else install_dev; fi
fi
step "done in $((SECONDS - START)) s"
if ((!UNINSTALL && !SERVICE && !DRY_RUN)); then
    note "try: $DEV_VENV/bin/facecue --help"
fi
