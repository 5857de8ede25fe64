#!/usr/bin/env bash
# scripts/test.sh — what `make test` (and so CI) runs.
#
#   1. scripts/deps.sh: installs Prosody and Redis when missing (and ejabberd when the Go code drives
#      ejabberdctl, i.e. when tests use it);
#   2. go vet ./...
#   3. go test -race -count=1 -timeout 20m ./...   (add -v by setting STARLING_TEST_VERBOSE=1)
#
# The tests start their own Redis, Prosody (and ejabberd) on free loopback ports and NATS in-process
# (internal/testenv), so nothing is started here. Exits non-zero when any step fails; prints the
# elapsed time at the end either way. Extra arguments are passed on to `go test` (e.g. -run Foo).
set -euo pipefail
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

started=$SECONDS
report_time() {
	local rc=$? elapsed=$((SECONDS - started))
	if ((rc == 0)); then
		printf 'test.sh: PASS, elapsed %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
	else
		printf 'test.sh: FAIL (exit %d), elapsed %dm%02ds\n' "$rc" $((elapsed / 60)) $((elapsed % 60)) >&2
	fi
}
trap report_time EXIT

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
deps_args=()
# ejabberd is a large install; only pull it in when the Go code actually runs ejabberdctl.
if grep -rqs --include='*.go' 'ejabberdctl' .; then
	deps_args+=(--ejabberd)
fi
bash scripts/deps.sh "${deps_args[@]}"

step "go vet ./..."
go vet ./...

test_args=(-race -count=1 -timeout 20m)
if [[ -n ${STARLING_TEST_VERBOSE:-} ]]; then
	test_args+=(-v)
fi
test_args+=("$@" ./...)
step "go test ${test_args[*]}"
go test "${test_args[@]}"
