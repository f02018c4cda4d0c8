#!/usr/bin/env bash
# A throwaway OpenSSH server on 127.0.0.1, for testing whosent-deploy's
# SSH transport against a real server.
#
#   scripts/local-sshd.sh up [--port P] [--noscp-port P2] [--dir DIR] [--watch-pid PID]
#                            [--dropbear [--dropbear-port P3]]
#   scripts/local-sshd.sh down [--dir DIR]
#
# `up` (as root) installs openssh-server and sudo if missing, makes DIR
# (default /tmp/whosent-sshd) with host keys (ed25519, ecdsa) and a client
# key, creates the user whosent-test (passwordless sudo) and authorizes
# the client key for it and for root -- in DIR only, for this server
# only: the system's sshd and ~/.ssh files are not touched. It starts
# /usr/sbin/sshd listening on 127.0.0.1 only, on port P (default: a free
# one) and on port P2, where `scp` is "not found" as on a dropbear board,
# and prints shell-evaluable lines:
#
#   SSHD_PORT=...  SSHD_NOSCP_PORT=...  SSHD_KEY=...  SSHD_KNOWN_HOSTS=...
#   SSHD_DIR=...   SSHD_USER=whosent-test  SSHD_DROPBEAR_PORT=...
#
# With --dropbear it also installs dropbear-bin and starts Debian's
# dropbear (what most boards run) on 127.0.0.1:P3 with ed25519, ecdsa and
# rsa host keys, as a board without scp: every command goes through the
# same "scp: not found" shell. dropbear has no AuthorizedKeysFile option,
# so the client key is appended to ~whosent-test/.ssh/authorized_keys
# (and removed again by `down`). SSHD_DROPBEAR_PORT is empty without it.
#
# Everything else goes to stderr. With --watch-pid, a watcher stops the
# server once process PID is gone, so a test run that crashes leaves no
# sshd behind. `down` stops the server (and the watcher) and is a no-op
# when nothing runs.
#
#   eval "$(scripts/local-sshd.sh up)"
#   ssh -i "$SSHD_KEY" -p "$SSHD_PORT" -o UserKnownHostsFile="$SSHD_KNOWN_HOSTS" \
#       "$SSHD_USER@127.0.0.1" id
#   scripts/local-sshd.sh down
set -euo pipefail

USER_NAME=whosent-test
SSHD=/usr/sbin/sshd

log() { printf 'local-sshd: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; }

cmd=${1:-}
[ $# -gt 0 ] && shift
port= noscp_port= dir=/tmp/whosent-sshd watch_pid= dropbear= dropbear_port=
DROPBEAR=/usr/sbin/dropbear
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --noscp-port) noscp_port=${2:?--noscp-port needs a value}; shift 2 ;;
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        --watch-pid) watch_pid=${2:?--watch-pid needs a value}; shift 2 ;;
        --dropbear) dropbear=1; shift ;;
        --dropbear-port) dropbear_port=${2:?--dropbear-port needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage; die "unknown argument '$1'" ;;
    esac
done
case $dir in
    /*) ;;
    *) dir=$PWD/$dir ;;
esac
case $dir in
    *[[:space:]\"]*) die "--dir must not contain spaces or quotes: $dir" ;;
esac

# Whether something accepts connections on 127.0.0.1:$1 (bash's /dev/tcp,
# so no ss/netstat is needed on a minimal system).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p i
    for i in $(seq 1 100); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if ! port_open "$p"; then echo "$p"; return 0; fi
    done
    die "found no free port on 127.0.0.1"
}

# Running, and not a zombie: where PID 1 does not reap (some
# containers), a stopped daemon stays one.
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null &&
        [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# Stops the process whose pid is in file $1 (named $2 in the log).
stop_pidfile() {
    local pid i
    pid=$(cat "$1" 2>/dev/null || true)
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
        log "stopped $2 (pid $pid)"
    fi
    rm -f "$1"
}

user_authorized_keys() {
    printf '%s/.ssh/authorized_keys' "$(getent passwd "$USER_NAME" | cut -d: -f6)"
}

stop() {
    local watcher keys
    watcher=$(cat "$dir/watcher.pid" 2>/dev/null || true)
    if [ -n "$watcher" ] && [ "$watcher" != "$$" ] && alive "$watcher"; then
        kill "$watcher" 2>/dev/null || true
    fi
    rm -f "$dir/watcher.pid"
    stop_pidfile "$dir/sshd.pid" sshd
    stop_pidfile "$dir/dropbear.pid" dropbear
    # Take back the key dropbear was given.
    if [ -f "$dir/id_ed25519.pub" ] && id -u "$USER_NAME" >/dev/null 2>&1; then
        keys=$(user_authorized_keys)
        if [ -f "$keys" ] && grep -qxF -f "$dir/id_ed25519.pub" "$keys"; then
            grep -vxF -f "$dir/id_ed25519.pub" "$keys" >"$keys.tmp" || true
            chown "$USER_NAME": "$keys.tmp"
            chmod 600 "$keys.tmp"
            mv "$keys.tmp" "$keys"
        fi
    fi
}

install_packages() {
    local need=()
    [ -x "$SSHD" ] || need+=(openssh-server)
    command -v ssh-keygen >/dev/null || need+=(openssh-client)
    command -v sudo >/dev/null || need+=(sudo)
    [ -z "$dropbear" ] || [ -x "$DROPBEAR" ] || need+=(dropbear-bin)
    [ ${#need[@]} -eq 0 ] && return 0
    log "installing ${need[*]}"
    # Keep the package's own sshd from starting on port 22 (Debian's
    # invoke-rc.d asks policy-rc.d; 101 means "do not start").
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    {
        apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    } >&2 || rc=$?
    [ -n "$made_policy" ] && rm -f "$policy"
    [ $rc -eq 0 ] || die "apt-get install ${need[*]} failed"
}

setup_user() {
    if ! id -u "$USER_NAME" >/dev/null 2>&1; then
        log "creating user $USER_NAME"
        useradd --create-home --shell /bin/sh "$USER_NAME"
    fi
    # useradd leaves the password '!' (locked), and sshd without PAM
    # refuses locked accounts even for keys; '*' means "no password".
    case $(getent shadow "$USER_NAME" | cut -d: -f2) in
        '!'*) usermod -p '*' "$USER_NAME" ;;
    esac
    local sudoers=/etc/sudoers.d/$USER_NAME
    if [ ! -f "$sudoers" ]; then
        printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$USER_NAME" >"$sudoers.tmp"
        chmod 0440 "$sudoers.tmp"
        if command -v visudo >/dev/null && ! visudo -cqf "$sudoers.tmp"; then
            rm -f "$sudoers.tmp"
            die "the generated sudoers file does not parse"
        fi
        mv "$sudoers.tmp" "$sudoers"
    fi
}

keys() {
    # Traversable by whosent-test: sshd reads the authorized keys as the
    # user. The private keys stay 0600.
    mkdir -p "$dir/authorized_keys"
    chmod 755 "$dir" "$dir/authorized_keys"
    local t
    for t in ed25519 ecdsa; do
        [ -f "$dir/ssh_host_${t}_key" ] ||
            ssh-keygen -q -t "$t" -N '' -C "whosent-test-host" -f "$dir/ssh_host_${t}_key"
    done
    [ -f "$dir/id_ed25519" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "whosent-test-client" -f "$dir/id_ed25519"
    local u
    for u in "$USER_NAME" root; do
        cp "$dir/id_ed25519.pub" "$dir/authorized_keys/$u"
        chmod 644 "$dir/authorized_keys/$u"
    done
    # A board without scp: sshd runs every command of the no-scp port
    # through this, in a shell where scp is "not found" as on dropbear.
    cat >"$dir/noscp-shell" <<'EOF'
#!/bin/sh
exec /bin/sh -c 'scp() { echo "sh: 1: scp: not found" >&2; return 127; }
'"$SSH_ORIGINAL_COMMAND"
EOF
    chmod 755 "$dir/noscp-shell"
}

write_config() {
    cat >"$dir/sshd_config" <<EOF
# Written by scripts/local-sshd.sh; loopback only.
ListenAddress 127.0.0.1
Port $port
Port $noscp_port
HostKey "$dir/ssh_host_ed25519_key"
HostKey "$dir/ssh_host_ecdsa_key"
PidFile "$dir/sshd.pid"
AuthorizedKeysFile "$dir/authorized_keys/%u"
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# DIR may sit under /tmp, which is world-writable.
StrictModes no
# Tests connect in parallel.
MaxStartups 64
MaxSessions 64
LoginGraceTime 30
# A developer's ssh-agent may offer many keys before the test key.
MaxAuthTries 30
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server

Match LocalPort $noscp_port
    ForceCommand "$dir/noscp-shell"
EOF
}

start() {
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    "$SSHD" -t -f "$dir/sshd_config" || die "sshd rejects $dir/sshd_config"
    : >"$dir/sshd.log"
    "$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log"
    local i
    for i in $(seq 1 100); do
        if port_open "$port" && port_open "$noscp_port" && [ -s "$dir/sshd.pid" ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# dropbear as a board runs it: its own key format, and no scp.
start_dropbear() {
    local t args=() keys home try
    for t in ed25519 ecdsa rsa; do
        [ -f "$dir/dropbear_${t}_host_key" ] ||
            dropbearkey -t "$t" -f "$dir/dropbear_${t}_host_key" >/dev/null 2>&1
        dropbearkey -y -f "$dir/dropbear_${t}_host_key" |
            grep -E '^(ssh-|ecdsa-)' | cut -d' ' -f1,2 >"$dir/dropbear_${t}_host_key.pub"
        args+=(-r "$dir/dropbear_${t}_host_key")
    done
    keys=$(user_authorized_keys)
    home=$(dirname "$(dirname "$keys")")
    install -d -m 700 -o "$USER_NAME" -g "$(id -gn "$USER_NAME")" "$home/.ssh"
    if ! grep -qxF -f "$dir/id_ed25519.pub" "$keys" 2>/dev/null; then
        cat "$dir/id_ed25519.pub" >>"$keys"
    fi
    chown "$USER_NAME": "$keys"
    chmod 600 "$keys"
    local fixed=${dropbear_port:+yes}
    for try in 1 2 3; do
        [ -n "$dropbear_port" ] || dropbear_port=$(free_port)
        # -s -g: no passwords; -w: no root; -c: every command through
        # the no-scp shell; -E: log to stderr, here the log file.
        "$DROPBEAR" "${args[@]}" -p "127.0.0.1:$dropbear_port" -P "$dir/dropbear.pid" \
            -s -g -w -c "$dir/noscp-shell" -E </dev/null >/dev/null 2>>"$dir/dropbear.log"
        local i
        for i in $(seq 1 50); do
            if port_open "$dropbear_port" && [ -s "$dir/dropbear.pid" ]; then return 0; fi
            sleep 0.1
        done
        stop_pidfile "$dir/dropbear.pid" dropbear
        tail -n 5 "$dir/dropbear.log" >&2 || true
        [ -z "$fixed" ] && [ $try -lt 3 ] || die "dropbear failed to start"
        dropbear_port=
    done
}

up() {
    [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and creates a user)"
    install_packages
    mkdir -p "$dir"
    stop
    setup_user
    keys
    local fixed=${port:+yes} try
    for try in 1 2 3; do
        [ -n "$port" ] || port=$(free_port)
        [ -n "$noscp_port" ] || noscp_port=$(free_port)
        [ "$port" != "$noscp_port" ] || noscp_port=$(free_port)
        write_config
        if start; then break; fi
        stop
        log "sshd did not come up on ports $port and $noscp_port:"
        tail -n 5 "$dir/sshd.log" >&2 || true
        # Someone took an automatically chosen port: pick others.
        [ -z "$fixed" ] || die "sshd failed to start"
        [ $try -lt 3 ] || die "sshd failed to start"
        port= noscp_port=
    done
    [ -z "$dropbear" ] || start_dropbear
    {
        local p t
        for p in "$port" "$noscp_port"; do
            for t in ed25519 ecdsa; do
                printf '[127.0.0.1]:%s %s\n' "$p" "$(cut -d' ' -f1,2 "$dir/ssh_host_${t}_key.pub")"
            done
        done
        if [ -n "$dropbear" ]; then
            for t in ed25519 ecdsa rsa; do
                printf '[127.0.0.1]:%s %s\n' "$dropbear_port" "$(cat "$dir/dropbear_${t}_host_key.pub")"
            done
        fi
    } >"$dir/known_hosts"
    if [ -n "$watch_pid" ]; then
        # Detached, with no inherited output, so callers reading this
        # script's output see EOF when it exits.
        setsid bash -c '
            while kill -0 "$1" 2>/dev/null && [ -f "$2/sshd.pid" ]; do sleep 1; done
            exec "$3" down --dir "$2"
        ' watcher "$watch_pid" "$dir" "$(realpath "$0")" </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/watcher.pid"
    fi
    log "sshd (pid $(cat "$dir/sshd.pid")) on 127.0.0.1:$port, no-scp port $noscp_port; log $dir/sshd.log"
    [ -z "$dropbear" ] ||
        log "dropbear (pid $(cat "$dir/dropbear.pid")) on 127.0.0.1:$dropbear_port; log $dir/dropbear.log"
    printf 'SSHD_PORT=%q\n' "$port"
    printf 'SSHD_NOSCP_PORT=%q\n' "$noscp_port"
    printf 'SSHD_KEY=%q\n' "$dir/id_ed25519"
    printf 'SSHD_KNOWN_HOSTS=%q\n' "$dir/known_hosts"
    printf 'SSHD_DIR=%q\n' "$dir"
    printf 'SSHD_USER=%q\n' "$USER_NAME"
    printf 'SSHD_DROPBEAR_PORT=%s\n' "$dropbear_port"
}

case $cmd in
    up) up ;;
    down) stop ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
esac
