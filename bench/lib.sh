# Shared by the bench scripts (source it): start a release `mandate serve` on a fresh data
# dir under $1 and give it what the benchmarks drive: an agent inside a CRM boundary with
# a client secret, and the example CRM policies, active. Sets mandate_pid, maddr, admin,
# agent, secret and basic; mandate_token mints a fresh access token (they live 5 minutes).
# The caller stops mandate_pid. need_tools installs missing Debian packages first.

# Installs each named tool that is not on PATH from Debian (through sudo when not root).
# apt's chatter goes to stderr: the scripts' stdout is their Markdown table.
need_tools() {
  local tool sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo=sudo
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$tool"; } >&2
  done
}

start_mandate() {
  local work="$1"
  target/release/mandate serve --listen 127.0.0.1:0 --data-dir "$work/data" \
    >"$work/mandate.out" 2>"$work/mandate.err" &
  mandate_pid=$!
  for _ in $(seq 400); do grep -q "mandate agent register" "$work/mandate.out" && break; sleep 0.05; done
  grep -q "mandate agent register" "$work/mandate.out" || { cat "$work/mandate.err" >&2; return 1; }
  maddr="$(grep -o 'http://[0-9.:]*' "$work/mandate.out" | head -n1)"
  admin="$(grep -o 'mat_[A-Za-z0-9_-]*' "$work/mandate.out")"
  agent="$(curl -sf "$maddr/v1/agents" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' \
    -d '{"name":"bench-bot","owner":"bench@example.com","labels":{"team":"sales"},
         "boundary":{"grants":[{"actions":["crm:*"],"resources":["Crm::Contact/*"],"data_classes":["internal"]}]}}' \
    | jq -r .id)"
  jq -n --rawfile p examples/crm/policies.cedar --rawfile s examples/crm/schema.cedarschema \
    '{policies: $p, schema_fragments: [$s]}' \
    | curl -sf "$maddr/v1/policies" -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' -d @- >/dev/null
  curl -sf -X POST "$maddr/v1/policies/1/activate" -H "Authorization: Bearer $admin" >/dev/null
  secret="$(curl -sf "$maddr/v1/agents/$agent/credentials" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d '{"type":"client_secret"}' | jq -r .client_secret)"
  basic="Basic $(printf '%s:%s' "$agent" "$secret" | base64 -w0)"
}

mandate_token() {
  curl -sf "$maddr/oauth/token" -u "$agent:$secret" -d grant_type=client_credentials | jq -r .access_token
}
