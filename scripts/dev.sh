#!/usr/bin/env bash
# The newcomer's entry point (README "Two commands"): puts Node >= 22.15 on PATH
# (Node 24 from the npm registry when the machine's is older), installs the
# locked dependencies when node_modules is missing, then
#   start        runs `fleet start` (everything in one process, data in ./data)
#   test         runs `npm test` (the whole suite; starts a real Kafka broker)
#   fleet ARGS   runs any other fleet command
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=node-env.sh
# Checks the Node version first: >= 22.15 on PATH, else Node 24 into .tools/, else it says what to install and exits.
source scripts/node-env.sh || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  start) exec node bin/fleet.js start "$@" ;;
  test) if [ $# -gt 0 ]; then exec npm test -- "$@"; else exec npm test; fi ;;
  fleet) exec node bin/fleet.js "$@" ;;
  *) echo "usage: scripts/dev.sh start [fleet start flags] | test [vitest args] | fleet <command> [args]" >&2; exit 2 ;;
esac
