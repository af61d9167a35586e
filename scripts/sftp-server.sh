#!/usr/bin/env bash
# A throwaway OpenSSH sftp server on 127.0.0.1 for tests: real sshd + internal-sftp, real /usr/bin/sftp client.
#
# Nothing is installed system-wide. Debian's openssh-server (plus libwrap0, which sshd links against but a
# client-only machine lacks, and libnss-wrapper, see "privilege separation" below) is fetched once with
# `apt-get download` and unpacked with `dpkg -x` into .tools/openssh/ (gitignored), then reused.
#
# Usage:
#   scripts/sftp-server.sh fetch                     fetch + unpack if not cached; prints SSHD=<path>
#   scripts/sftp-server.sh start <state-dir> <port>  set up keys/config in <state-dir>, start sshd in the
#                                                    BACKGROUND, wait until it listens, print KEY=value lines
#   scripts/sftp-server.sh run <state-dir> <port>    same setup, KEY=value lines on stderr, then exec sshd
#                                                    in the FOREGROUND (-D -e, log on stderr, pid = $!)
#   scripts/sftp-server.sh stop <state-dir>          stop the sshd started by `start` (no-op if not running)
#
# `start` prints one KEY=value per line on stdout (value = everything after the first '=', not quoted):
#   SFTP_HOST, SFTP_PORT, SFTP_USER, SFTP_KEY (client private key), SFTP_KNOWN_HOSTS, SFTP_SSH_CONFIG,
#   SFTP_HOST_ALIAS, SFTP_PID, SFTP_LOG, SFTP_OPTS (flags for `sftp`, which takes -P for the port).
# The same values, shell-quoted, are written to <state-dir>/sftp.env for `source`. With the generated ssh
# config, any OpenSSH client works:  sftp -F <state>/ssh_config sftppush-test   (or ssh / scp likewise).
#
# Exit codes: 0 ok, 1 failure (log shown on stderr), 2 usage, 3 port already in use (pick another and retry).
#
# Who can log in: sshd started by root allows root (PermitRootLogin prohibit-password, key only); sshd
# started by a non-root user can only ever authenticate that same user, so SFTP_USER is always `id -un`.
#
# Privilege separation: sshd running as root needs the compiled-in chroot dir /run/sshd and a passwd
# entry for the `sshd` user. As root we create /run/sshd (on tmpfs, gone at reboot; the only thing this
# script touches outside the project). A client-only machine has no `sshd` user, and rather than adding
# one with useradd we run sshd under nss_wrapper (LD_PRELOAD) with a passwd/group copy in the state dir
# that adds it. As non-root sshd skips the chroot and needs neither. The login account must not be
# locked ('!' in shadow), since UsePAM is off: so `nobody` can't be used (nss-systemd reports it locked).
#
# Environment: SFTP_SERVER_TOOLS_DIR (default <repo>/.tools/openssh), SFTP_SERVER_START_TIMEOUT (seconds,
# default 20), SFTP_SERVER_LOGLEVEL (sshd LogLevel, default INFO).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
TOOLS=${SFTP_SERVER_TOOLS_DIR:-$REPO_ROOT/.tools/openssh}
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
LIBDIR=$TOOLS/usr/lib/$MULTIARCH
SSHD=$TOOLS/usr/sbin/sshd
NSS_WRAPPER=$LIBDIR/libnss_wrapper.so
PRIVSEP_DIR=/run/sshd # Debian's compiled-in _PATH_PRIVSEP_CHROOT_DIR; checked against the binary below
HOST_ALIAS=sftppush-test
FETCH_TMP=""

die() { echo "sftp-server.sh: $*" >&2; exit 1; }
usage() { sed -n '8,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------------------------------------- fetch
apt_download() { # apt_download <pkg[=version]>...   into the current directory
  local sandbox=()
  # apt drops to the _apt user for downloads; in a directory _apt can't write it warns. As root, don't drop.
  [[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)
  apt-get -q "${sandbox[@]}" download "$@" >/dev/null 2>apt-download.err
}

do_fetch() {
  [[ -f $TOOLS/.complete && -x $SSHD ]] && return 0 # cached: no lock needed (.complete is written last)
  mkdir -p "$(dirname "$TOOLS")"
  exec 9>"$TOOLS.lock"
  flock 9 # concurrent test files may call us at once; one fetches, the others wait and reuse
  if [[ -f $TOOLS/.complete && -x $SSHD ]]; then
    exec 9>&-
    return 0
  fi
  local ver pkgs=(openssh-server libwrap0 libnss-wrapper)
  FETCH_TMP=$(mktemp -d "$(dirname "$TOOLS")/.openssh-fetch.XXXXXX")
  local tmp=$FETCH_TMP
  trap 'rm -rf "$FETCH_TMP"' EXIT
  ver=$(dpkg-query -W -f='${Version}' openssh-client 2>/dev/null || true)
  (
    cd "$tmp"
    # Prefer the exact version of the installed client; the archive usually only keeps the newest point
    # release, which is the same upstream OpenSSH and is fine. If the package lists are missing or stale
    # (a fresh machine), refresh them once; that needs root.
    attempt() {
      { [[ -n $ver ]] && apt_download "openssh-server=$ver" libwrap0 libnss-wrapper; } ||
        apt_download "${pkgs[@]}"
    }
    if ! attempt; then
      if [[ $(id -u) == 0 ]]; then
        echo "sftp-server.sh: apt-get download failed, running apt-get update once" >&2
        apt-get -q update >/dev/null 2>&1 || true
        attempt || { cat apt-download.err >&2; exit 1; }
      else
        cat apt-download.err >&2
        echo "sftp-server.sh: as non-root, run 'apt-get update' (root) first, or fetch once as root" >&2
        exit 1
      fi
    fi
    mkdir root
    for deb in ./*.deb; do dpkg -x "$deb" root; done
    {
      for deb in ./*.deb; do dpkg-deb -f "$deb" Package Version | paste -sd' '; done
      date -u +'fetched %Y-%m-%dT%H:%M:%SZ'
    } >root/.complete
  ) || die "could not fetch openssh-server (see above)"
  local missing
  missing=$(LD_LIBRARY_PATH=$tmp/root/usr/lib/$MULTIARCH ldd "$tmp/root/usr/sbin/sshd" | grep 'not found' || true)
  [[ -z $missing ]] || die "unpacked sshd has unresolved libraries: $missing"
  rm -rf "$TOOLS"
  mv "$tmp/root" "$TOOLS"
  rm -rf "$tmp"
  trap - EXIT
  exec 9>&-
}

# ---------------------------------------------------------------------------------------------- setup
STATE=""
PORT=""
USER_NAME=""
SSHD_ENV=()

setup() { # setup <state-dir> <port>: keys, config, privsep; leaves SSHD_ENV for launching
  [[ $# == 2 ]] || usage
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then die "bad port: $2"; fi
  mkdir -p "$1"
  STATE=$(cd "$1" && pwd)
  PORT=$2
  do_fetch
  local s=$STATE
  if [[ -f $s/sshd.pid ]] && alive "$(cat "$s/sshd.pid")"; then
    die "an sshd from $s is already running (pid $(cat "$s/sshd.pid")); stop it first"
  fi
  rm -f "$s/sshd.pid"
  local uid
  uid=$(id -u)
  USER_NAME=$(id -un)
  SSHD_ENV=("LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  getent passwd "$uid" >/dev/null || die "uid $uid has no passwd entry (sshd, ssh-keygen and sftp need one)"
  # With UsePAM no, sshd refuses accounts whose shadow hash starts with '!' (locked), even for key logins.
  # A plain non-root user can't read /etc/shadow (neither can its sshd), but nss-systemd hands out a
  # locked entry for root/nobody, so `nobody` is refused: use a real user.
  local hash
  hash=$(getent shadow "$USER_NAME" 2>/dev/null | cut -d: -f2 || true)
  [[ $hash != '!'* ]] || die "account $USER_NAME is locked (shadow '!...'); sshd with UsePAM no refuses it"
  if [[ $uid == 0 ]]; then
    grep -aq "$PRIVSEP_DIR" "$SSHD" || die "unpacked sshd was not built with privsep dir $PRIVSEP_DIR"
    mkdir -p "$PRIVSEP_DIR"
    chmod 755 "$PRIVSEP_DIR" # sshd refuses a group/world-writable chroot dir
    if ! getent passwd sshd >/dev/null; then
      # No privsep user and we won't useradd one: give sshd (only) a passwd with it, via nss_wrapper.
      [[ -f $NSS_WRAPPER ]] || die "missing $NSS_WRAPPER; delete $TOOLS and retry"
      getent passwd >"$s/passwd"
      echo "sshd:x:65534:65534:sshd privilege separation:$PRIVSEP_DIR:/usr/sbin/nologin" >>"$s/passwd"
      getent group >"$s/group"
      SSHD_ENV+=("LD_PRELOAD=$NSS_WRAPPER" "NSS_WRAPPER_PASSWD=$s/passwd" "NSS_WRAPPER_GROUP=$s/group")
    fi
  fi

  [[ -f $s/host_key ]] || ssh-keygen -q -t ed25519 -N '' -C sftppush-test-host -f "$s/host_key"
  [[ -f $s/client_key ]] || ssh-keygen -q -t ed25519 -N '' -C sftppush-test-client -f "$s/client_key"
  cp "$s/client_key.pub" "$s/authorized_keys"
  chmod 600 "$s/host_key" "$s/client_key"

  cat >"$s/sshd_config" <<EOF
# Generated by scripts/sftp-server.sh; throwaway test server, loopback only.
ListenAddress 127.0.0.1
Port $PORT
HostKey $s/host_key
PidFile $s/sshd.pid
AuthorizedKeysFile $s/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
ChrootDirectory none
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 100
LogLevel ${SFTP_SERVER_LOGLEVEL:-INFO}
EOF

  sed "s|^|[127.0.0.1]:$PORT |" "$s/host_key.pub" >"$s/known_hosts"
  cat >"$s/ssh_config" <<EOF
Host $HOST_ALIAS
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $s/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $s/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
  # sntrup761 (the default) costs ~0.15 s CPU per connection per side; tests don't test the kex
  KexAlgorithms curve25519-sha256
EOF
  env "${SSHD_ENV[@]}" "$SSHD" -t -f "$s/sshd_config" || die "sshd rejected $s/sshd_config"
}

print_info() {
  local s=$STATE pid=$1 opts
  opts="-i $s/client_key -P $PORT -o IdentitiesOnly=yes -o UserKnownHostsFile=$s/known_hosts"
  opts+=" -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR -o KexAlgorithms=curve25519-sha256"
  local -a kv=(
    "SFTP_HOST=127.0.0.1" "SFTP_PORT=$PORT" "SFTP_USER=$USER_NAME" "SFTP_KEY=$s/client_key"
    "SFTP_KNOWN_HOSTS=$s/known_hosts" "SFTP_SSH_CONFIG=$s/ssh_config" "SFTP_HOST_ALIAS=$HOST_ALIAS"
    "SFTP_PID=$pid" "SFTP_LOG=$s/sshd.log" "SFTP_OPTS=$opts"
  )
  : >"$s/sftp.env"
  local line
  for line in "${kv[@]}"; do
    echo "$line"
    printf '%s=%q\n' "${line%%=*}" "${line#*=}" >>"$s/sftp.env"
  done
}

# ---------------------------------------------------------------------------------------------- start
alive() { # a running (not zombie) process; kill -0 also succeeds for an unreaped zombie
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && ${st:0:1} != Z ]]
}

banner_ok() { # the port answers with an SSH banner (sshd logs the probe as a reset connection)
  local b
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash
  b=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; head -c 4 <&3' _ "$1" 2>/dev/null) || return 1
  [[ $b == SSH- ]]
}

do_start() {
  setup "$@"
  local s=$STATE log=$STATE/sshd.log pid deadline
  : >"$log"
  # -D: no daemon(), so $! is sshd itself and a failed bind exits the process we watch; -e: log to the file.
  env "${SSHD_ENV[@]}" "$SSHD" -D -e -f "$s/sshd_config" </dev/null >>"$log" 2>&1 &
  pid=$!
  deadline=$((SECONDS + ${SFTP_SERVER_START_TIMEOUT:-20}))
  # sshd writes PidFile only once its sockets are bound; "Server listening" confirms it is OUR port.
  until [[ -f $s/sshd.pid ]] && grep -q "Server listening on 127.0.0.1 port $PORT\." "$log" && banner_ok "$PORT"; do
    if ! alive "$pid"; then
      wait "$pid" 2>/dev/null || true
      cat "$log" >&2
      if grep -q 'Address already in use' "$log"; then
        echo "sftp-server.sh: port $PORT is in use" >&2
        exit 3
      fi
      die "sshd exited during startup (log above, $log)"
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      cat "$log" >&2
      die "sshd did not start listening on 127.0.0.1:$PORT within ${SFTP_SERVER_START_TIMEOUT:-20}s"
    fi
    sleep 0.05
  done
  print_info "$pid"
}

do_run() {
  setup "$@"
  print_info "$$" >&2
  exec env "${SSHD_ENV[@]}" "$SSHD" -D -e -f "$STATE/sshd_config"
}

# ---------------------------------------------------------------------------------------------- stop
do_stop() {
  [[ $# == 1 ]] || usage
  [[ -d $1 ]] || return 0
  local s pid i
  s=$(cd "$1" && pwd)
  [[ -f $s/sshd.pid ]] || return 0
  pid=$(cat "$s/sshd.pid")
  # Only signal the process if it really is the sshd of this state dir (pids get reused).
  if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$s/sshd_config"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$s/sshd.pid"
}

cmd=${1:-}
shift || true
case $cmd in
  fetch) do_fetch && echo "SSHD=$SSHD" ;;
  start) do_start "$@" ;;
  run) do_run "$@" ;;
  stop) do_stop "$@" ;;
  *) usage ;;
esac
