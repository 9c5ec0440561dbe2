#!/usr/bin/env bash
# Sets facecue up on a Raspberry Pi, an x86 Debian/Ubuntu box, a laptop or CI.
#
# Two layouts, so that the service never runs code out of someone's home
# directory (the unit has ProtectHome=yes) and a developer never needs root:
#   ./install.sh               device: a non-editable install in /opt/facecue/venv,
#                              `facecue` on the PATH, the `facecue` and `facecue-sync`
#                              users, the config in /etc/facecue and the systemd
#                              units (adapted to an old systemd), enabled.
#   ./install.sh --no-service  laptop/container/CI: an editable install in ./.venv.
# Both install the apt packages that are missing. Running it again only does
# what changed; --uninstall takes back what it added.
#
# Least privilege on a device: the daemon (`facecue`), which parses camera input,
# can only read the model store; the sync (`facecue-sync`, primary group `facecue`
# so that the daemon can read what it writes) alone writes the store and the sync
# state, and alone reads the AWS credentials.
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
readonly MODEL_DIR=$STATE_DIR/models      # device.config's [model] store
readonly SYNC_STATE_DIR=$STATE_DIR/sync   # device.sync's state_dir
readonly AWS_FILES=("$CONFIG_DIR/aws-credentials" "$CONFIG_DIR/aws-config")
readonly SYNC_ENV=$CONFIG_DIR/sync.env    # read by systemd itself (root), never by the service
readonly UNIT_DIR=/etc/systemd/system
readonly BIN_LINK=/usr/local/bin/facecue
readonly SERVICE_USER=facecue
readonly SYNC_USER=facecue-sync
readonly DEVICE_GROUPS=(video audio gpio)
readonly MAIN_UNIT=facecue.service
readonly SYNC_UNITS=(facecue-sync.service facecue-sync.timer)
readonly CREATED_MARK=.facecue-created    # in a venv: this script made it, --uninstall may delete it
readonly STAMP=.facecue-installed         # in a venv: what was installed last, to skip a redundant pip run
# The first systemd release that knows each setting the units use, where that is later
# than 229 (Ubuntu 16.04's, on the AWS DeepLens). An older systemd warns about such a
# setting at every start and ignores it, so install.sh leaves it out and says so.
# SystemCallFilter: the units filter by @system-service, a set systemd 235 brought.
declare -rA SYSTEMD_SINCE=(
    [StartLimitIntervalSec]=230 [ReadWritePaths]=231 [RestrictRealtime]=231 [MemoryDenyWriteExecute]=231
    [PrivateUsers]=232 [ProtectKernelTunables]=232 [ProtectKernelModules]=232 [ProtectControlGroups]=232
    [RemoveIPC]=232 [RestrictNamespaces]=233 [StateDirectory]=235 [StateDirectoryMode]=235
    [ConfigurationDirectory]=235 [ConfigurationDirectoryMode]=235 [IPAddressDeny]=235 [LockPersonality]=235
    [KeyringMode]=235 [SystemCallFilter]=235 [ProtectHostname]=242 [RestrictSUIDSGID]=242
    [ProtectKernelLogs]=244 [ProtectClock]=245 [ProtectProc]=247 [PrivateIPC]=248)
readonly APT_COMMON=(python3-venv python3-dev build-essential portaudio19-dev alsa-utils)
# Installed where the archive has it: only tools.make_voice_clips needs espeak-ng (the
# device speaks the committed clips), and Ubuntu 16.04 (the DeepLens) has none.
readonly APT_OPTIONAL=(espeak-ng)
readonly APT_PI=(python3-picamera2 python3-lgpio)  # from the Pi archive: libcamera has no PyPI wheels
# The Pi venv sees apt's picamera2 and simplejpeg, built against apt's NumPy 1.x;
# a NumPy 2 in the venv would shadow it and break `import picamera2`.
readonly PIP_PI_PINS=("numpy<2")

usage() {
    cat <<EOF
Usage: ./install.sh [options]

Sets up facecue from this checkout.

  (no option)      device install: apt packages, a venv in $SERVICE_VENV with the
                   package (not editable), $BIN_LINK, the '$SERVICE_USER' user
                   (groups ${DEVICE_GROUPS[*]}, where they exist) and the
                   '$SYNC_USER' user (the only one that writes $MODEL_DIR
                   and reads the AWS credentials), $STATE_DIR, a default
                   $CONFIG if there is none, and the systemd units
                   ($MAIN_UNIT, plus ${SYNC_UNITS[*]} when present; settings
                   this systemd is too old for are left out), enabled and
                   started. Needs root (uses sudo when not root).
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
  --print-unit NAME  print systemd/NAME as it would be installed on this systemd.
  -h, --help       this text.

Runs on 64-bit x86 and 64-bit ARM (64-bit Raspberry Pi OS); it refuses 32-bit
ARM (armv7l, armv6l), for which numpy, OpenCV and LiteRT have no wheels.
On a Raspberry Pi (/etc/rpi-issue, or 'Raspberry Pi' in /proc/device-tree/model)
it also installs ${APT_PI[*]} from the Raspberry Pi apt archive, makes the venv
with --system-site-packages so they are importable, and pins ${PIP_PI_PINS[*]}.
FACECUE_PLATFORM=pi|debian overrides the detection; PYTHON=/path/to/python3.11+
picks the interpreter (default: /usr/bin/python3 for the service, python3 for
--no-service): where the system's Python is older (Ubuntu 16.04 on an AWS
DeepLens has 3.5), unpack a standalone CPython 3.11 outside /home and point
PYTHON= at it.
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

SERVICE=1 UNINSTALL=0 PURGE=0 DRY_RUN=0 EXTRAS='' EXTRAS_SET=0 PRINT_UNIT=''
while (($#)); do
    case $1 in
        --no-service) SERVICE=0 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --extras) (($# >= 2)) || die "--extras needs a value, e.g. --extras dev,cloud"
                  EXTRAS=$2 EXTRAS_SET=1; shift ;;
        --extras=*) EXTRAS=${1#--extras=} EXTRAS_SET=1 ;;
        --print-unit) (($# >= 2)) || die "--print-unit needs a unit name, e.g. --print-unit $MAIN_UNIT"
                      PRINT_UNIT=$2; shift ;;
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

# check_platform: refuse, before anything changes, a machine the runtime's wheels do not exist for.
check_platform() {
    local machine bits
    machine=$(uname -m)
    bits=$(getconf LONG_BIT)
    case $machine in
        armv6*) die "$machine (Pi 1, Pi Zero W) is not supported: there are no LiteRT or TFLite wheels for it; use a Pi Zero 2 W, 3, 4 or 5 with 64-bit Raspberry Pi OS" ;;
        armv7*|armv8l) die "32-bit ARM ($machine) is not supported: numpy, OpenCV and LiteRT have no wheels for it; install 64-bit Raspberry Pi OS (Pi Zero 2 W, 3, 4, 5)" ;;
        aarch64|arm64) [[ $bits == 64 ]] || die "a 32-bit system on a 64-bit ARM kernel is not supported: numpy, OpenCV and LiteRT have no wheels for 32-bit ARM; install 64-bit Raspberry Pi OS" ;;
        x86_64) ;;
        *) warn "facecue has not been tried on $machine: pip may find no wheel for numpy, OpenCV or LiteRT" ;;
    esac
}

# in_list WORD LIST...: whether WORD is one of LIST.
in_list() { local word=$1; shift; [[ " $* " == *" $word "* ]]; }

# pi_archive_configured: apt has a Raspberry Pi source (where the Pi's camera and GPIO packages come from).
pi_archive_configured() {
    local list parts
    eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d)"
    grep -Eqs '^[^#]*raspberrypi\.' "$list" "$parts"*.list "$parts"*.sources
}

# apt_has PKG: whether the configured archives offer PKG.
apt_has() {
    local candidate
    candidate=$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
    [[ -n $candidate && $candidate != "(none)" ]]
}

install_apt_packages() {
    local -a wanted=("${APT_COMMON[@]}" "${APT_OPTIONAL[@]}") missing=() install=()
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
    for pkg in "${APT_PI[@]}"; do
        if in_list "$pkg" "${missing[@]}" && ! pi_archive_configured; then
            die "$pkg is not installed and apt has no Raspberry Pi archive to get it from: use Raspberry Pi OS (64-bit), or FACECUE_PLATFORM=debian on a board without the Pi camera"
        fi
    done
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    if ((DRY_RUN)); then
        install=("${missing[@]}")
    else
        for pkg in "${missing[@]}"; do
            if apt_has "$pkg"; then
                install+=("$pkg")
            elif in_list "$pkg" "${APT_OPTIONAL[@]}"; then
                note "$pkg is not in this system's apt archives: skipped (only tools.make_voice_clips needs it)"
            else
                die "$pkg is not in this system's apt archives; install it (or its equivalent) by hand and run again"
            fi
        done
    fi
    if ((${#install[@]})); then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${install[@]}"
    fi
}

# check_python PY: Python 3.11+ (tomllib, the typing the code uses) or a one-line error.
check_python() {
    local py=$1
    if ! command -v "$py" >/dev/null; then
        if ((DRY_RUN)); then note "$py is not there yet (apt would bring it)"; return; fi
        die "$py not found; install Python 3.11 or newer (or set PYTHON=)"
    fi
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); facecue needs 3.11 or newer: point PYTHON= at one (a standalone CPython build where the system has none)"
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
    $priv "$py" -m venv ${opts[@]+"${opts[@]}"} "$venv"  # bash < 4.4 (the DeepLens's) calls an empty array unbound
    $priv touch "$venv/$CREATED_MARK"
}

# source_stamp DIR [FILE...]: one hash naming what an install from DIR would put in a venv.
source_stamp() {
    local dir=$1; shift
    { echo "extras=$EXTRAS pins=${PIP_PINS[*]-}"; (cd "$dir" && find "$@" -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum); } \
        | sha256sum | cut -d' ' -f1
}

# pip_install PRIV VENV STAMP TARGET [PIP-OPTION...]: pip install TARGET unless STAMP says it is there.
pip_install() {
    local priv=$1 venv=$2 stamp=$3 target=$4; shift 4
    step "package $(with_extras facecue)${PIP_PINS[*]+ with ${PIP_PINS[*]}} into $venv"
    if [[ -f $venv/$STAMP && $(<"$venv/$STAMP") == "$stamp" ]]; then
        note "up to date"
        return
    fi
    $priv "$venv/bin/python" -m pip install "$@" "$target" ${PIP_PINS[@]+"${PIP_PINS[@]}"}
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

ensure_sync_user() {
    step "system user $SYNC_USER (primary group $SERVICE_USER)"
    if ! id -u "$SYNC_USER" >/dev/null 2>&1; then
        as_root useradd --system --gid "$SERVICE_USER" --no-user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "facecue model sync" "$SYNC_USER"
    elif [[ $(id -gn "$SYNC_USER") != "$SERVICE_USER" ]]; then
        as_root usermod -g "$SERVICE_USER" "$SYNC_USER"
    else
        note "exists"
    fi
}

# ensure_dir DIR OWNER:GROUP MODE [-R]: DIR exists with that owner and mode; -R: and what is in it,
# so that a store the daemon's user wrote before the sync had its own user changes hands.
ensure_dir() {
    local dir=$1 owner=$2 mode=$3
    local -a how=()
    if [[ ${4:-} == -R ]]; then how=(-R); fi
    if [[ ! -d $dir ]]; then
        as_root install -d -o "${owner%:*}" -g "${owner#*:}" -m "$mode" "$dir"
        return
    fi
    if [[ $(stat -c %U:%G "$dir") != "$owner" ]]; then as_root chown ${how[@]+"${how[@]}"} "$owner" "$dir"; fi
    if [[ $(stat -c %a "$dir") != "${mode#0}" ]]; then as_root chmod "$mode" "$dir"; fi
    note "$dir: $owner $mode"
}

# The sync unit's StateDirectory= makes the last two on a systemd >= 235 with the same
# owner and mode; made here too for an older systemd and for the daemon's first start.
ensure_state_dirs() {
    step "state $STATE_DIR (the daemon reads, $SYNC_USER writes)"
    ensure_dir "$STATE_DIR" "root:$SERVICE_USER" 0750
    ensure_dir "$MODEL_DIR" "$SYNC_USER:$SERVICE_USER" 0750 -R
    ensure_dir "$SYNC_STATE_DIR" "$SYNC_USER:$SERVICE_USER" 0750 -R
}

# secure_file FILE OWNER MODE: tighten FILE, if it exists, to OWNER and MODE.
secure_file() {
    local file=$1 owner=$2 mode=$3
    if [[ ! -e $file ]]; then return; fi
    if [[ $(stat -c %U:%a "$file") == "$owner:${mode#0}" ]]; then
        note "$file: $owner $mode"
        return
    fi
    as_root chown "$owner" "$file"
    as_root chmod "$mode" "$file"
}

secure_sync_secrets() {
    step "credentials: readable by $SYNC_USER alone"
    local file found=0
    for file in "${AWS_FILES[@]}" "$SYNC_ENV"; do if [[ -e $file ]]; then found=1; fi; done
    if ((found == 0)); then
        note "none in $CONFIG_DIR (an anonymous bucket, or sync not set up yet: see tools/cloud/README.md)"
        return
    fi
    for file in "${AWS_FILES[@]}"; do secure_file "$file" "$SYNC_USER" 0600; done
    secure_file "$SYNC_ENV" root 0600
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

systemd_version() { systemctl --version | awk 'NR == 1 { print $2 + 0 }'; }

# adapt_unit FILE VERSION: FILE as systemd VERSION understands it. Settings it does not
# know are left out (named in a first comment line); ProtectSystem=strict becomes =full,
# and StartLimitIntervalSec= in [Unit] StartLimitInterval= in [Service], their older forms.
adapt_unit() {
    local file=$1 version=$2 since="" key
    for key in "${!SYSTEMD_SINCE[@]}"; do since+="$key=${SYSTEMD_SINCE[$key]} "; done
    awk -v version="$version" -v since="$since" '
        BEGIN { n = split(since, pairs, " "); for (i = 1; i <= n; i++) { split(pairs[i], kv, "="); first[kv[1]] = kv[2] } }
        function keep(line) { out[++lines] = line }
        /^\[/ { keep($0); if ($0 == "[Service]" && limit != "") { keep("StartLimitInterval=" limit); limit = "" } next }
        /^[A-Za-z]+=/ {
            key = substr($0, 1, index($0, "=") - 1); value = substr($0, index($0, "=") + 1)
            if (key in first && version < first[key]) {
                if (key == "StartLimitIntervalSec") limit = value
                if (!(key in said)) { said[key]; dropped = dropped " " key }
                next
            }
            if (key == "ProtectSystem" && value == "strict" && version < 232) {
                keep("ProtectSystem=full"); dropped = dropped " ProtectSystem=strict(full)"; next
            }
        }
        { keep($0) }
        END {
            if (dropped != "") print "# install.sh: for systemd " version ", left out:" dropped
            for (i = 1; i <= lines; i++) print out[i]
        }' "$file"
}

# install_unit NAME VERSION: systemd/NAME, adapted to systemd VERSION, into $UNIT_DIR atomically when it differs.
install_unit() {
    local name=$1 version=$2 dest=$UNIT_DIR/$1 adapted
    adapted=$(mktemp)
    adapt_unit "$REPO/systemd/$name" "$version" >"$adapted"
    if [[ $(head -n 1 "$adapted") == "# install.sh: for systemd"* ]]; then
        note "$name: $(head -n 1 "$adapted" | cut -c 15-)"
    fi
    if cmp -s "$adapted" "$dest"; then
        note "$dest is up to date"
    else
        as_root install -m 0644 -o root -g root "$adapted" "$dest.new"
        as_root mv -f "$dest.new" "$dest"
        UNITS_CHANGED=1
    fi
    rm -f "$adapted"
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
    ensure_sync_user
    ensure_state_dirs
    secure_sync_secrets
    if [[ ! -d $PREFIX ]]; then as_root install -d -m 0755 "$PREFIX"; fi
    make_venv as_root "$SERVICE_VENV" "$py"
    clean_source_copy
    pip_install as_root "$SERVICE_VENV" "$(source_stamp "$SOURCE_COPY" .)" "$(with_extras "$SOURCE_COPY")"
    ensure_command_link
    ensure_config

    local version
    version=$(systemd_version)
    step "systemd units in $UNIT_DIR (systemd $version)"
    local -a units=("$MAIN_UNIT") unit
    if [[ -f $REPO/systemd/${SYNC_UNITS[0]} && -f $REPO/systemd/${SYNC_UNITS[1]} ]]; then
        units+=("${SYNC_UNITS[@]}")
    else
        note "no ${SYNC_UNITS[*]} in systemd/: model sync timer not installed"
    fi
    for unit in "${units[@]}"; do install_unit "$unit" "$version"; done
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

    step "system users $SYNC_USER and $SERVICE_USER"
    if id -u "$SYNC_USER" >/dev/null 2>&1; then
        as_root userdel "$SYNC_USER"  # first: its primary group is $SERVICE_USER's
    fi
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

# print_unit NAME: what install_unit would install for systemd/NAME on this systemd.
print_unit() {
    local name=$1
    [[ $name =~ ^[A-Za-z0-9@._-]+$ && -f $REPO/systemd/$name ]] || die "no unit systemd/$name in $REPO"
    command -v systemctl >/dev/null || die "systemctl not found: no systemd to adapt $name to"
    adapt_unit "$REPO/systemd/$name" "$(systemd_version)"
}

if [[ -n $PRINT_UNIT ]]; then print_unit "$PRINT_UNIT"; exit 0; fi
START=$SECONDS CHANGED=0 UNITS_CHANGED=0 PIP_PINS=()
if ((DRY_RUN)); then echo "dry run: nothing will be changed"; fi
if is_pi; then PLATFORM="Raspberry Pi"; else PLATFORM="Debian/Ubuntu (not a Pi)"; fi

if ((UNINSTALL)); then
    step "uninstalling facecue from $PLATFORM"
    uninstall
else
    step "installing facecue on $PLATFORM from $REPO"
    [[ -f $REPO/pyproject.toml ]] || die "no pyproject.toml in $REPO; run install.sh from the facecue checkout"
    check_platform
    if is_pi; then PIP_PINS=("${PIP_PI_PINS[@]}"); fi
    install_apt_packages
    if ((SERVICE)); then install_service; else install_dev; fi
fi
step "done in $((SECONDS - START)) s"
if ((!UNINSTALL && !SERVICE && !DRY_RUN)); then
    note "try: $DEV_VENV/bin/facecue --help"
fi
