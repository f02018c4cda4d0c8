#!/usr/bin/env bash
# A throwaway OpenSSH server on 127.0.0.1, for testing whosent-deploy's
# SSH transport against a real server.
#
#   scripts/local-sshd.sh up [--port P] [--noscp-port P2] [--dir DIR] [--watch-pid PID]
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
#   SSHD_DIR=...   SSHD_USER=whosent-test
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
port= noscp_port= dir=/tmp/whosent-sshd watch_pid=
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --noscp-port) noscp_port=${2:?--noscp-port needs a value}; shift 2 ;;
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        --watch-pid) watch_pid=${2:?--watch-pid needs a value}; shift 2 ;;
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

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

stop() {
    local pid watcher i
    watcher=$(cat "$dir/watcher.pid" 2>/dev/null || true)
    if [ -n "$watcher" ] && [ "$watcher" != "$$" ] && alive "$watcher"; then
        kill "$watcher" 2>/dev/null || true
    fi
    rm -f "$dir/watcher.pid"
    pid=$(cat "$dir/sshd.pid" 2>/dev/null || true)
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
        log "stopped sshd (pid $pid)"
    fi
    rm -f "$dir/sshd.pid"
}

install_packages() {
    local need=()
    [ -x "$SSHD" ] || need+=(openssh-server)
    command -v ssh-keygen >/dev/null || need+=(openssh-client)
    command -v sudo >/dev/null || need+=(sudo)
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
    {
        local p t
        for p in "$port" "$noscp_port"; do
            for t in ed25519 ecdsa; do
                printf '[127.0.0.1]:%s %s\n' "$p" "$(cut -d' ' -f1,2 "$dir/ssh_host_${t}_key.pub")"
            done
        done
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
    printf 'SSHD_PORT=%q\n' "$port"
    printf 'SSHD_NOSCP_PORT=%q\n' "$noscp_port"
    printf 'SSHD_KEY=%q\n' "$dir/id_ed25519"
    printf 'SSHD_KNOWN_HOSTS=%q\n' "$dir/known_hosts"
    printf 'SSHD_DIR=%q\n' "$dir"
    printf 'SSHD_USER=%q\n' "$USER_NAME"
}

case $cmd in
    up) up ;;
    down) stop ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
esac
