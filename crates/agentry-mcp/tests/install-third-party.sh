#!/bin/sh
# Installs the third-party MCP servers the integration tests run against
# (tests/it/third_party.rs). Called by `.ci/run`; the installed files are not committed.
#
#   crates/agentry-mcp/tests/install-third-party.sh
#
# Result: crates/agentry-mcp/tests/third_party/node_modules/@modelcontextprotocol/server-everything
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/third_party"
mkdir -p "$dir"
cd "$dir"
if [ ! -f package.json ]; then
    printf '{"name":"agentry-mcp-third-party","private":true}\n' > package.json
fi
# Pinned so a new release cannot change the tests' expectations unnoticed.
npm install --no-audit --no-fund --loglevel=error \
    @modelcontextprotocol/server-everything@2026.8.31
node -e 'require.resolve("@modelcontextprotocol/server-everything/package.json")' >/dev/null
echo "installed: $(node -p 'require("@modelcontextprotocol/server-everything/package.json").version')"
