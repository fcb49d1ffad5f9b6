# Shared helpers for the scripts in this folder. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VAR="$ROOT/var"
FERRETDB_VERSION="v1.24.2"
FERRETDB_BIN="$VAR/bin/ferretdb"

say() { printf 'chatd: %s\n' "$*"; }
die() { printf 'chatd: error: %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds what
  local deadline=$((SECONDS + $2))
  until port_open "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$3 did not open port $1 within $2 s"
    sleep 0.2
  done
}

wait_http() { # url seconds what
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "$3 not ready at $1 within $2 s"
    sleep 0.3
  done
}

setup_needed() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import chatd, socketio, pymongo, pytest' 2>/dev/null \
    && command -v redis-server >/dev/null && [ -x /usr/sbin/nginx ] \
    && { [ -n "${CHATD_MONGO_URL:-}" ] || [ -x "$FERRETDB_BIN" ]; } && return 1
  return 0
}

# The embedded Redis's password, made on first use (var/redis.password, readable by its owner
# only): whoever can PUBLISH to the bus can push events to every client.
redis_password() {
  local file="$VAR/redis.password"
  if [ ! -s "$file" ]; then
    mkdir -p "$VAR"
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
  fi
  cat "$file"
}

# Embedded Redis: loopback only, protected mode, a password; an append-only file (fsync every
# second) so a restart keeps the FerretDB layout's hot tails and archive queue (MongoDB stays
# the source of truth); pub/sub subscribers cut at 32 MB/8 MB for 60 s (docs/guarantees.md G9).
exec_redis() { # port dir password: replaces the calling (sub)shell with redis-server
  exec redis-server --port "$1" --bind 127.0.0.1 --protected-mode yes --dir "$2" \
    --requirepass "$3" --save '' --appendonly yes --appendfsync everysec \
    --client-output-buffer-limit "pubsub 32mb 8mb 60" --loglevel warning
}

ferretdb_args() { # port dir
  echo "--listen-addr=127.0.0.1:$1 --handler=sqlite --sqlite-url=file:$2/data/" \
       "--state-dir=$2/state --telemetry=disable --debug-addr=- --log-level=warn"
}
