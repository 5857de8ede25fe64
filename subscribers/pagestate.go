package subscribers

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A fanout reads the state of every follower of a page to skip the paused,
// the offline and the unreachable. Read as one HMGET per follower, a page
// of 500 cost the client ~19 allocations per follower (go-redis builds and
// decodes every command), which bounded the walk at ~2 ms a page. On a
// single Redis server one script per page reads the same fields on the
// server and answers with one byte per follower. Redis Cluster cannot run
// it (the followers' state keys lie in every slot), so there the walk keeps
// its pipelined HMGETs.

// pageStates answers, for each state key in KEYS, '1' if that follower
// gets posts now and '0' if not: the rule of FollowerState.deliverable,
// which TestPageStatesMatchDeliverable holds it to. ARGV: the unix time now,
// bounceRetry in seconds, the fields (paused, presence, unreachable) and
// presenceOff.
var pageStates = redis.NewScript(`
local now, retry = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, ARGV[3], ARGV[4], ARGV[5])
  local ok = v[1] ~= '1' and v[2] ~= ARGV[6]
  if ok and v[3] then
    local u = tonumber(v[3])
    if u and now - u < retry then ok = false end
  end
  out[i] = ok and '1' or '0'
end
return table.concat(out)`)

// pageStateReader reads a page's deliverable mask with pageStates.
type pageStateReader struct {
	keys []string // state keys of the page, reused
	cmd  *redis.Cmd
	args []any
}

// queue adds the script for the followers jids to pipe. It reuses the
// reader's buffers, so a walk allocates them once.
func (r *pageStateReader) queue(ctx context.Context, s *RedisStore, pipe redis.Pipeliner, jids []string, now time.Time) {
	r.keys = r.keys[:0]
	for _, j := range jids {
		r.keys = append(r.keys, s.keys.State(j))
	}
	r.args = append(r.args[:0], now.Unix(), int64(bounceRetry/time.Second), fieldPaused, fieldPresence, fieldUnreachable, presenceOff)
	r.cmd = pageStates.EvalSha(ctx, pipe, r.keys, r.args...)
}

// mask returns the script's answer, one byte per follower queued, running
// it with EVAL if the server had lost the script (a restart).
func (r *pageStateReader) mask(ctx context.Context, s *RedisStore) (string, error) {
	if redis.HasErrorPrefix(r.cmd.Err(), "NOSCRIPT") {
		r.cmd = pageStates.Eval(ctx, s.rdb, r.keys, r.args...)
	}
	return r.cmd.Text()
}

// scriptedStates reports whether the walk may read states with pageStates:
// only on a single server, not on Redis Cluster.
func scriptedStates(rdb redis.UniversalClient) bool {
	_, cluster := rdb.(*redis.ClusterClient)
	return !cluster
}

// formatUnix is a unix time as the state hash stores it.
func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
