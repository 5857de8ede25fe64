#!/usr/bin/env bash
# scripts/run.sh — `make run`: try Starling on this machine, from a clean clone.
#
# What it does, in order:
#   1. scripts/deps.sh (installs Prosody and Redis when missing), then builds bin/starling-gateway
#      and bin/starling-api.
#   2. Uses the folder run/ (gitignored). run/secrets.env (mode 600) keeps the admin token, the
#      component secret, the demo XMPP password and alice's API token across runs; delete it (or
#      `make clean`) to start over.
#   3. Picks ports: the defaults (c2s 5222, component 5347, Redis 6379, NATS 4222, HTTP 8080, gateway
#      metrics 9464), or the next free port when a default is taken (and says so). It never reuses a
#      Redis or NATS that is already running: it always starts its own.
#   4. Starts, each logging to run/<name>.log: redis (append-only file in run/redis, so accounts and follows survive a restart),
#      prosody (config written to run/prosody/prosody.cfg.lua, its own log in run/prosody/prosody.log),
#      the gateway (embedded NATS with JetStream data in run/nats) and the API; waits until each
#      answers (ports, then GET /readyz, 30 s each).
#   5. Registers the Jabber account bob@localhost, creates the author alice through the API, and
#      prints how to try it.
#   6. Stays in the foreground. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops everything it started, in
#      reverse order (api, gateway, prosody, redis), and exits 0. If one of the processes dies on its
#      own, the others are stopped and the script exits 1.
#
# Environment: STARLING_LOG_LEVEL (default info) is passed to both binaries.
set -Eeuo pipefail
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR="$ROOT/run"
SECRETS="$RUN_DIR/secrets.env"
PID_DIR="$RUN_DIR/pids"

XMPP_HOST=localhost            # Prosody's VirtualHost
DOMAIN=microblog.localhost     # the component's domain
DEMO_USER=bob                  # the demo Jabber account: bob@localhost
AUTHOR=alice                   # the demo author: alice@microblog.localhost
AUTHOR_NAME=Alice
READY_TIMEOUT=30               # seconds to wait for each process to be ready
STOP_TIMEOUT=15                # seconds each process gets to stop before SIGKILL

declare -A PID=()              # name -> pid of what this script started
STARTED=()                     # names, in start order
USED_PORTS=()                  # ports chosen by this run
STOPPING=false

say() { printf '==> %s\n' "$*"; }
warn() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
	warn "$*"
	exit 1
}
trap 'warn "command failed (line $LINENO): $BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------------------------------
# processes

# alive PID: true while the process exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# start NAME COMMAND...: start COMMAND in its own session (so a Ctrl-C in the terminal reaches only
# this script, which then stops everything in order), stdin from /dev/null, output to run/NAME.log.
start() {
	local name=$1
	shift
	say "starting $name (log: run/$name.log)"
	# 9>&- : do not hand the run/ lock to the children. STARLING_RUN_DIR marks them as ours, so a
	# later run can recognise leftovers if this script is ever killed with SIGKILL.
	setsid env STARLING_RUN_DIR="$RUN_DIR" "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null 9>&- &
	PID[$name]=$!
	STARTED+=("$name")
	echo "${PID[$name]}" >"$PID_DIR/$name.pid"
}

# stop_pid NAME PID: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.
stop_pid() {
	local name=$1 pid=$2 i
	if alive "$pid"; then
		say "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			warn "$name did not stop within ${STOP_TIMEOUT}s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

# stop_all: stop what this script started, newest first (api, gateway, prosody, redis).
stop_all() {
	local i name
	$STOPPING && return 0
	STOPPING=true
	trap '' INT TERM HUP # finish stopping even if Ctrl-C is pressed again
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		name=${STARTED[i]}
		stop_pid "$name" "${PID[$name]}"
		rm -f "$PID_DIR/$name.pid"
	done
}

on_signal() {
	echo
	say "$1: stopping everything"
	stop_all
	say "all stopped"
	exit 0
}

on_exit() {
	local rc=$?
	trap - ERR
	stop_all
	exit "$rc"
}

# ours PID: the process was started by a run of this script in this checkout: STARLING_RUN_DIR in its
# environment or, for redis-server (which overwrites its environment to set its process title), its
# working folder.
ours() {
	local environ
	[[ $(readlink "/proc/$1/cwd" 2>/dev/null) == "$RUN_DIR/redis" ]] && return 0
	environ=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/environ") || return 1
	grep -qxF "STARLING_RUN_DIR=$RUN_DIR" <<<"$environ"
}

# stop_leftovers: processes of an earlier run of this script that was killed before it could clean
# up (recognised by STARLING_RUN_DIR in their environment).
stop_leftovers() {
	local f pid name i
	for f in "$PID_DIR"/*.pid; do
		[[ -e $f ]] || continue
		name=$(basename "$f" .pid)
		pid=$(<"$f")
		if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && ours "$pid"; then
			say "stopping $name (pid $pid) left over from an earlier run"
			kill -TERM "$pid" 2>/dev/null || true
			for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
				alive "$pid" || break
				sleep 0.1
			done
			if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
		fi
		rm -f "$f"
	done
}

show_logs() {
	local f
	for f in "$RUN_DIR"/*.log "$RUN_DIR/prosody/prosody.log"; do
		[[ -s $f ]] || continue
		printf '\n----- %s (last 25 lines) -----\n' "${f#"$ROOT"/}" >&2
		tail -n 25 "$f" >&2
	done
	echo >&2
}

# ---------------------------------------------------------------------------------------------------
# ports

# port_busy PORT: true when something listens on PORT (any address), or 127.0.0.1:PORT accepts.
port_busy() {
	local port=$1 out
	if command -v ss >/dev/null 2>&1 && out=$(ss -Hltn "sport = :$port" 2>/dev/null); then
		[[ -n $out ]] && return 0
	fi
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

# pick_port VAR LABEL DEFAULT: DEFAULT if free, else the next free port above it.
pick_port() {
	local var=$1 label=$2 want=$3 port=$3 used
	while :; do
		used=false
		for p in "${USED_PORTS[@]}"; do [[ $p == "$port" ]] && used=true; done
		if ! $used && ! port_busy "$port"; then
			break
		fi
		port=$((port + 1))
		((port < want + 200)) || die "no free port found for $label in $want..$port"
	done
	if [[ $port != "$want" ]]; then
		say "port $want ($label) is already taken; using $port instead"
	fi
	USED_PORTS+=("$port")
	printf -v "$var" '%s' "$port"
}

# wait_port NAME PORT: until 127.0.0.1:PORT accepts connections (NAME must keep running).
wait_port() {
	local name=$1 port=$2 deadline=$((SECONDS + READY_TIMEOUT))
	until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; do
		alive "${PID[$name]}" || { show_logs; die "$name exited during startup (see run/$name.log)"; }
		((SECONDS < deadline)) || { show_logs; die "$name is not listening on 127.0.0.1:$port after ${READY_TIMEOUT}s"; }
		sleep 0.1
	done
}

# wait_ready NAME URL: until GET URL answers 200 (NAME must keep running).
wait_ready() {
	local name=$1 url=$2 deadline=$((SECONDS + READY_TIMEOUT)) code
	while :; do
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null) || true
		[[ $code == 200 ]] && break
		alive "${PID[$name]}" || { show_logs; die "$name exited during startup (see run/$name.log)"; }
		((SECONDS < deadline)) || { show_logs; die "$name: GET $url did not answer 200 within ${READY_TIMEOUT}s (last: ${code:-no answer})"; }
		sleep 0.2
	done
	say "$name is ready ($url)"
}

# ---------------------------------------------------------------------------------------------------
# secrets (run/secrets.env: KEY=VALUE lines, values are hex or API tokens)

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

secret_get() {
	[[ -f $SECRETS ]] || return 0
	sed -n "s/^$1=//p" "$SECRETS" | tail -n 1
}

secret_set() {
	local key=$1 value=$2 tmp
	tmp=$(mktemp "$RUN_DIR/.secrets.XXXXXX")
	{
		if [[ -f $SECRETS ]]; then
			grep -v "^$key=" "$SECRETS" || true
		else
			echo "# Generated by scripts/run.sh and reused by every 'make run'. Delete to regenerate."
		fi
		printf '%s=%s\n' "$key" "$value"
	} >"$tmp"
	chmod 600 "$tmp"
	mv -f "$tmp" "$SECRETS"
}

# ensure_secret VAR KEY BYTES: load KEY from secrets.env, generating it once.
ensure_secret() {
	local var=$1 key=$2 value
	value=$(secret_get "$key")
	if [[ -z $value ]]; then
		value=$(rand_hex "$3")
		secret_set "$key" "$value"
	fi
	printf -v "$var" '%s' "$value"
}

# ---------------------------------------------------------------------------------------------------
# HTTP API

# api METHOD PATH TOKEN [JSON]: sets HTTP_STATUS and HTTP_BODY; fails only when curl cannot connect.
api() {
	local out args=(-sS -m 10 -X "$1" -H "Authorization: Bearer $3" -w '\n%{http_code}')
	if [[ -n ${4:-} ]]; then
		args+=(-H 'Content-Type: application/json' --data "$4")
	fi
	out=$(curl "${args[@]}" "http://127.0.0.1:$HTTP_PORT$2") || return 1
	HTTP_STATUS=${out##*$'\n'}
	HTTP_BODY=${out%$'\n'*}
}

# json_string FIELD: a top-level string field of the JSON document on stdin.
json_string() {
	if command -v jq >/dev/null 2>&1; then
		jq -r --arg k "$1" '.[$k] // empty | strings'
	else
		tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"
	fi
}

# ensure_author: create alice, or reuse (or, failing that, renew) the token stored on creation.
ensure_author() {
	local token
	api POST /v1/users "$ADMIN_TOKEN" "{\"username\":\"$AUTHOR\",\"display_name\":\"$AUTHOR_NAME\"}" ||
		die "cannot reach the API to create $AUTHOR"
	case $HTTP_STATUS in
	201)
		token=$(json_string token <<<"$HTTP_BODY")
		[[ -n $token ]] || die "POST /v1/users answered 201 without a token: $HTTP_BODY"
		secret_set ALICE_TOKEN "$token"
		say "created the author $AUTHOR (token stored in run/secrets.env)"
		;;
	409)
		token=$(secret_get ALICE_TOKEN)
		# Check the stored token without posting: an empty post is refused with 422 after
		# authentication, and with 401 when the token is not valid.
		if [[ -n $token ]] && api POST /v1/statuses "$token" '{"text":""}' && [[ $HTTP_STATUS == 422 ]]; then
			say "the author $AUTHOR already exists; reusing her token from run/secrets.env"
		else
			api POST "/v1/users/$AUTHOR/token" "$ADMIN_TOKEN" || die "cannot reach the API"
			[[ $HTTP_STATUS == 200 ]] || die "$AUTHOR exists and her token could not be renewed: HTTP $HTTP_STATUS $HTTP_BODY"
			token=$(json_string token <<<"$HTTP_BODY")
			[[ -n $token ]] || die "POST /v1/users/$AUTHOR/token answered without a token: $HTTP_BODY"
			secret_set ALICE_TOKEN "$token"
			say "the author $AUTHOR already exists; issued her a new token (stored in run/secrets.env)"
		fi
		;;
	*)
		die "creating $AUTHOR failed: HTTP $HTTP_STATUS $HTTP_BODY"
		;;
	esac
	ALICE_TOKEN=$token
}

# ---------------------------------------------------------------------------------------------------
# Prosody

lua_string() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

write_prosody_config() {
	local dir="$RUN_DIR/prosody" as_root=false
	((EUID == 0)) && as_root=true
	mkdir -p "$dir/data" "$dir/certs" # an empty certs/ keeps Prosody from logging an error about it
	cat >"$dir/prosody.cfg.lua" <<EOF
-- Written by scripts/run.sh on every 'make run' (edits are overwritten).
-- A loopback-only Prosody for trying Starling: no TLS, no s2s, plain-text logins.
run_as_root = $as_root
pidfile = $(lua_string "$dir/prosody.pid")
data_path = $(lua_string "$dir/data")
admins = { }

interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
component_ports = { $COMPONENT_PORT }
component_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { }
https_ports = { }

modules_enabled = {
	"roster";   -- contact lists (presence subscriptions are how one follows an author)
	"saslauth"; -- logins
	"disco";    -- service discovery
	"ping";     -- XEP-0199
	"carbons";  -- keep several clients of one account in sync
	"offline";  -- store messages for offline users
	"posix";    -- pidfile
}
modules_disabled = { "s2s"; "tls" }

c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"

log = { info = $(lua_string "$dir/prosody.log") }
network_settings = { min_wait = 0.00001 }

VirtualHost "$XMPP_HOST"

Component "$DOMAIN"
	component_secret = "$XMPP_SECRET"
EOF
	PROSODY_CFG="$dir/prosody.cfg.lua"
}

register_demo_user() {
	local out
	# prosodyctl register creates the account, or sets the password of an existing one.
	if ! out=$(prosodyctl --config "$PROSODY_CFG" register "$DEMO_USER" "$XMPP_HOST" "$DEMO_PASSWORD" 2>&1 </dev/null); then
		printf '%s\n' "$out" >&2
		die "prosodyctl register $DEMO_USER $XMPP_HOST failed"
	fi
	say "Jabber account $DEMO_USER@$XMPP_HOST is registered"
}

# ---------------------------------------------------------------------------------------------------

main() {
	cd "$ROOT"
	mkdir -p "$RUN_DIR" "$PID_DIR" "$RUN_DIR/redis" "$RUN_DIR/nats"
	chmod 700 "$RUN_DIR"

	# One 'make run' at a time per checkout: they would share run/.
	exec 9>"$RUN_DIR/.lock"
	if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
		die "another 'make run' is already running from $ROOT (it holds run/.lock)"
	fi
	trap 'on_signal "interrupted"' INT
	trap 'on_signal "SIGTERM received"' TERM
	trap 'on_signal "SIGHUP received"' HUP
	trap on_exit EXIT
	stop_leftovers

	say "checking dependencies"
	bash "$ROOT/scripts/deps.sh"

	say "building bin/starling-gateway and bin/starling-api"
	go build -o bin/starling-gateway ./cmd/gateway || die "building ./cmd/gateway failed"
	go build -o bin/starling-api ./cmd/api || die "building ./cmd/api failed"

	umask 077
	ensure_secret ADMIN_TOKEN STARLING_ADMIN_TOKEN 24
	ensure_secret XMPP_SECRET STARLING_XMPP_SECRET 24
	ensure_secret DEMO_PASSWORD DEMO_XMPP_PASSWORD 8
	chmod 600 "$SECRETS"

	pick_port C2S_PORT "XMPP c2s" 5222
	pick_port COMPONENT_PORT "XMPP component" 5347
	pick_port REDIS_PORT "Redis" 6379
	pick_port NATS_PORT "NATS" 4222
	pick_port HTTP_PORT "HTTP API" 8080
	pick_port METRICS_PORT "gateway metrics" 9464

	local redis_url="redis://127.0.0.1:$REDIS_PORT/0" log_level=${STARLING_LOG_LEVEL:-info}

	start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
		--dir "$RUN_DIR/redis" --daemonize no --logfile ""
	write_prosody_config
	register_demo_user
	start prosody prosody -F --config "$PROSODY_CFG"
	wait_port redis "$REDIS_PORT"
	say "redis is ready (127.0.0.1:$REDIS_PORT)"
	wait_port prosody "$C2S_PORT"
	wait_port prosody "$COMPONENT_PORT"
	say "prosody is ready (c2s 127.0.0.1:$C2S_PORT, component 127.0.0.1:$COMPONENT_PORT)"

	start gateway env -u STARLING_ADMIN_TOKEN \
		STARLING_NATS_URL= \
		STARLING_EMBEDDED_NATS_ADDR="127.0.0.1:$NATS_PORT" \
		STARLING_DATA_DIR="$RUN_DIR/nats" \
		STARLING_XMPP_DOMAIN="$DOMAIN" \
		STARLING_XMPP_ADDR="127.0.0.1:$COMPONENT_PORT" \
		STARLING_XMPP_SECRET="$XMPP_SECRET" \
		STARLING_REDIS_URL="$redis_url" \
		STARLING_REDIS_PREFIX="starling:" \
		STARLING_METRICS_ADDR="127.0.0.1:$METRICS_PORT" \
		STARLING_LOG_LEVEL="$log_level" \
		"$ROOT/bin/starling-gateway"
	wait_ready gateway "http://127.0.0.1:$METRICS_PORT/readyz"

	start api env -u STARLING_XMPP_SECRET -u STARLING_METRICS_ADDR \
		STARLING_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
		STARLING_HTTP_ADDR="127.0.0.1:$HTTP_PORT" \
		STARLING_ADMIN_TOKEN="$ADMIN_TOKEN" \
		STARLING_XMPP_DOMAIN="$DOMAIN" \
		STARLING_REDIS_URL="$redis_url" \
		STARLING_REDIS_PREFIX="starling:" \
		STARLING_LOG_LEVEL="$log_level" \
		"$ROOT/bin/starling-api"
	wait_ready api "http://127.0.0.1:$HTTP_PORT/readyz"

	ensure_author

	cat <<EOF

================================ Starling is running ================================
 Jabber account   $DEMO_USER@$XMPP_HOST   password: $DEMO_PASSWORD
                  server 127.0.0.1, port $C2S_PORT, plain authentication, no TLS/STARTTLS
 Follow alice     send the message  follow $AUTHOR  to  $DOMAIN
                  (follows are kept in run/redis across restarts; \`make clean\` forgets them)
 Post as alice    curl -sS -X POST http://127.0.0.1:$HTTP_PORT/v1/statuses \\
                    -H 'Authorization: Bearer $ALICE_TOKEN' \\
                    -H 'Content-Type: application/json' -d '{"text":"Hello from Starling"}'
 API              http://127.0.0.1:$HTTP_PORT  (admin token: STARLING_ADMIN_TOKEN in run/secrets.env)
 Gateway metrics  http://127.0.0.1:$METRICS_PORT/metrics
 Logs             run/api.log run/gateway.log run/prosody.log run/redis.log
                  run/prosody/prosody.log (Prosody's own log)

 Ctrl-C stops everything.
=====================================================================================
EOF

	# Stay in the foreground until a signal arrives (the traps stop everything) or a child dies.
	local pids=() name dead rc
	for name in "${STARTED[@]}"; do pids+=("${PID[$name]}"); done
	rc=0
	wait -n -p dead "${pids[@]}" || rc=$?
	for name in "${STARTED[@]}"; do
		if [[ ${PID[$name]} == "${dead:-}" ]]; then
			show_logs
			die "$name exited unexpectedly (status $rc); stopping the rest"
		fi
	done
	die "a child process exited unexpectedly (status $rc); stopping the rest"
}

main "$@"
