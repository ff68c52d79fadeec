# Sourced by scripts/demo and scripts/test: makes RabbitMQ and MongoDB
# reachable and exports NUANNAN_AMQP_URL / NUANNAN_MONGODB_URI.
#
# - NUANNAN_TEST_AMQP_URL / NUANNAN_TEST_MONGODB_URI already set: use them.
# - A Docker engine: throwaway test containers (RabbitMQ 3.13, MongoDB 7) on
#   the default ports (docker/compose.yml is the deployment, closed to the host).
# - Otherwise (this machine): the local RabbitMQ server, and SecantusDB — a
#   MongoDB wire-protocol server from PyPI — in a virtualenv under .venv.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECANTUS_VERSION="0.7.0b3"
MONGO_PORT="${NUANNAN_LOCAL_MONGO_PORT:-27017}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

mongo_answers() {
  "$ROOT/.venv/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, pymongo
pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=1500).admin.command("ping")
PY
}

start_rabbitmq_local() {
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting RabbitMQ"
    rabbitmq-server -detached
  fi
  rabbitmqctl -q await_startup --timeout 120 >/dev/null
  impersonating_guest rabbitmqctl
}

# The test harness (tests/it/common/commands.rs) acts for many principals
# as the gateway and the console do, so its login — guest, on a test broker
# only — carries RabbitMQ's impersonator tag.
impersonating_guest() {
  "$@" -q set_user_tags guest administrator impersonator >/dev/null
}

start_secantus_local() {
  local uri="mongodb://127.0.0.1:${MONGO_PORT}/?directConnection=true"
  if [ ! -x "$ROOT/.venv/bin/secantusd-py" ]; then
    log "installing SecantusDB ${SECANTUS_VERSION} into .venv (MongoDB stand-in)"
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install -q "secantusdb==${SECANTUS_VERSION}"
  fi
  if ! mongo_answers "$uri"; then
    log "starting SecantusDB on 127.0.0.1:${MONGO_PORT}"
    mkdir -p "$ROOT/.data/secantus"
    nohup "$ROOT/.venv/bin/secantusd-py" --port "$MONGO_PORT" --storage-path "$ROOT/.data/secantus" \
      >"$ROOT/.data/secantus.log" 2>&1 &
    for _ in $(seq 1 120); do mongo_answers "$uri" && break; sleep 0.5; done
    mongo_answers "$uri" || { echo "SecantusDB did not start; see .data/secantus.log" >&2; return 1; }
  fi
  export NUANNAN_MONGODB_URI="$uri"
}

# The real peers the tests drive (PyPI): wechatpy seals WeChat pushes as the
# WeChat server does, schemathesis checks the gateway against its OpenAPI
# document, georeport reads the Open311 API as GeoReport clients do. Pinned
# (xmltodict 0.14: georeport requires < 0.15); installed into .venv.
PYTHON_PEERS="wechatpy==1.8.18 cryptography==50.0.2 xmltodict==0.14.2 schemathesis==4.32.5 georeport==0.3.1 jsonschema==4.26.0"

python_peers() {
  [ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
  if ! "$ROOT/.venv/bin/python" -c 'import wechatpy, schemathesis, georeport, jsonschema' 2>/dev/null; then
    log "installing the Python peers into .venv ($PYTHON_PEERS)"
    "$ROOT/.venv/bin/pip" install -q $PYTHON_PEERS
  fi
}

# Debian tools the suite uses: wrk (the gateway benchmark's load tool).
debian_tools() {
  command -v wrk >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing wrk (Debian)"
    apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
  else
    echo "wrk is missing: apt-get install wrk" >&2
    return 1
  fi
}

# The console's real-browser test (tests/browser/console_flow.py): Debian's
# chromium (and chromedriver), CJK fonts so the Chinese UI's screenshots are
# legible, and the pinned playwright package in .venv. No `playwright install`:
# the script launches /usr/bin/chromium (or $NUANNAN_CHROMIUM).
PLAYWRIGHT_VERSION="1.65.2"

browser_tools() {
  if ! command -v chromium >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing chromium and CJK fonts (Debian)"
      local pkgs="chromium chromium-driver fonts-noto-cjk"
      apt-get install -y -q $pkgs >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $pkgs >/dev/null; }
    else
      echo "chromium or CJK fonts missing: apt-get install chromium chromium-driver fonts-noto-cjk" >&2
      return 1
    fi
  fi
  [ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
  if ! "$ROOT/.venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
    log "installing playwright ${PLAYWRIGHT_VERSION} into .venv (drives Debian's chromium)"
    "$ROOT/.venv/bin/pip" install -q "playwright==${PLAYWRIGHT_VERSION}"
  fi
}

services_up() {
  if [ -n "${NUANNAN_TEST_AMQP_URL:-}" ] && [ -n "${NUANNAN_TEST_MONGODB_URI:-}" ]; then
    export NUANNAN_AMQP_URL="$NUANNAN_TEST_AMQP_URL" NUANNAN_MONGODB_URI="$NUANNAN_TEST_MONGODB_URI"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    log "starting RabbitMQ and MongoDB test containers"
    docker start nuannan-test-rabbitmq >/dev/null 2>&1 ||
      docker run -d --name nuannan-test-rabbitmq -p 5672:5672 rabbitmq:3.13 >/dev/null
    docker start nuannan-test-mongo >/dev/null 2>&1 ||
      docker run -d --name nuannan-test-mongo -p 27017:27017 mongo:7 >/dev/null
    until docker exec nuannan-test-rabbitmq rabbitmqctl -q await_startup >/dev/null 2>&1; do sleep 1; done
    impersonating_guest docker exec nuannan-test-rabbitmq rabbitmqctl
    export NUANNAN_RABBITMQCTL="docker exec nuannan-test-rabbitmq rabbitmqctl"
    export NUANNAN_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
    export NUANNAN_MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true"
  elif command -v rabbitmq-server >/dev/null 2>&1; then
    start_rabbitmq_local
    export NUANNAN_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
    start_secantus_local
  else
    echo "Need a Docker engine, or a local RabbitMQ server (apt-get install rabbitmq-server)." >&2
    return 1
  fi
}
