package subscribers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Per-follower state lives in one hash per bare JID, s:{jid}, with these
// fields; the resources the JID has online are the set o:{jid}. Both share
// the hash tag, so the scripts below run on one Cluster slot.
const (
	fieldPaused      = "off"         // "1" after the follower sent "off"
	fieldPresence    = "presence"    // "on" or "off"; missing means unknown
	fieldAsked       = "asked"       // "1" once we asked for a presence subscription
	fieldGranted     = "granted"     // our JID the follower lets see their presence
	fieldBounces     = "bounces"     // deliveries bounced since the last sign of life
	fieldUnreachable = "unreachable" // unix time their server last bounced BounceLimit in a row
)

// Presence states as WalkFollowers sees them.
const (
	presenceOn  = "on"
	presenceOff = "off"
)

// BounceLimit is how many bounced deliveries in a row make a follower count
// as unreachable: skipped until they show up again, or for bounceRetry.
const BounceLimit = 3

// bounceRetry is how long an unreachable follower is skipped before a
// delivery is tried again.
const bounceRetry = time.Hour

// setPresence adds or removes a resource and derives the JID's presence.
// "Offline" is believed only from a JID that granted us its presence: only
// then will we hear when it comes back. Anything else (a server answering a
// subscription request with "unavailable", say) leaves the state unknown.
var setPresence = redis.NewScript(`
if ARGV[2] == "1" then
  redis.call("SADD", KEYS[1], ARGV[1])
  redis.call("HSET", KEYS[2], "presence", "on", "bounces", 0)
  redis.call("HDEL", KEYS[2], "unreachable")
  return 1
end
if ARGV[1] == "" then
  redis.call("DEL", KEYS[1])
else
  redis.call("SREM", KEYS[1], ARGV[1])
end
if redis.call("SCARD", KEYS[1]) > 0 then
  return 1
end
if redis.call("HEXISTS", KEYS[2], "granted") == 1 then
  redis.call("HSET", KEYS[2], "presence", "off")
else
  redis.call("HDEL", KEYS[2], "presence")
end
return 0
`)

// SetPresence records that a resource of the bare JID became available or
// unavailable (resource "" for a presence from the bare JID, which ends every
// resource). It reports whether the JID has any resource online now.
func (s *RedisStore) SetPresence(ctx context.Context, jid, resource string, available bool) (bool, error) {
	avail := "0"
	if available {
		avail = "1"
	}
	n, err := setPresence.Run(ctx, s.rdb, []string{s.keys.Resources(jid), s.keys.State(jid)}, resource, avail).Int()
	if err != nil {
		return false, fmt.Errorf("subscribers: presence of %s: %w", jid, err)
	}
	return n == 1, nil
}

var bounce = redis.NewScript(`
local n = redis.call("HINCRBY", KEYS[1], "bounces", 1)
if n >= tonumber(ARGV[1]) then
  redis.call("HSET", KEYS[1], "unreachable", ARGV[2], "bounces", 0)
end
return n
`)

// Bounced counts a delivery the follower's server sent back with an error.
// After BounceLimit in a row the follower is unreachable: skipped for
// bounceRetry, or until an available presence from them.
func (s *RedisStore) Bounced(ctx context.Context, jid string) (int64, error) {
	n, err := bounce.Run(ctx, s.rdb, []string{s.keys.State(jid)}, BounceLimit, time.Now().Unix()).Int64()
	if err != nil {
		return 0, fmt.Errorf("subscribers: bounce of %s: %w", jid, err)
	}
	return n, nil
}

// SetPaused records the follower's "off" (paused) or "on".
func (s *RedisStore) SetPaused(ctx context.Context, jid string, paused bool) error {
	var err error
	if paused {
		err = s.rdb.HSet(ctx, s.keys.State(jid), fieldPaused, "1").Err()
	} else {
		err = s.rdb.HDel(ctx, s.keys.State(jid), fieldPaused).Err()
	}
	if err != nil {
		return fmt.Errorf("subscribers: pause %s: %w", jid, err)
	}
	return nil
}

// FollowerState is what the gateway knows of one follower.
type FollowerState struct {
	Paused bool
	// Presence is "on", "off" or "" (unknown).
	Presence string
	// Unreachable is when their server last bounced BounceLimit deliveries
	// in a row (zero if it did not).
	Unreachable time.Time
}

// stateFields are the fields stateOf reads, in order.
var stateFields = []string{fieldPaused, fieldPresence, fieldUnreachable}

// State returns what is known of a follower.
func (s *RedisStore) State(ctx context.Context, jid string) (FollowerState, error) {
	v, err := s.rdb.HMGet(ctx, s.keys.State(jid), stateFields...).Result()
	if err != nil {
		return FollowerState{}, fmt.Errorf("subscribers: state of %s: %w", jid, err)
	}
	return stateOf(v), nil
}

func stateOf(v []any) FollowerState {
	var st FollowerState
	st.Paused = v[0] == "1"
	st.Presence, _ = v[1].(string)
	if u, ok := v[2].(string); ok {
		if sec, err := strconv.ParseInt(u, 10, 64); err == nil {
			st.Unreachable = time.Unix(sec, 0)
		}
	}
	return st
}

// deliverable reports whether a follower in this state gets posts now: not
// paused, not known to be offline (unknown counts as reachable), and not
// recently unreachable.
func (st FollowerState) deliverable(now time.Time) bool {
	return !st.Paused && st.Presence != presenceOff && now.Sub(st.Unreachable) >= bounceRetry
}

// FirstAsk reports whether this is the first time we ask the JID for a
// presence subscription, and remembers that we did.
func (s *RedisStore) FirstAsk(ctx context.Context, jid string) (bool, error) {
	first, err := s.rdb.HSetNX(ctx, s.keys.State(jid), fieldAsked, "1").Result()
	if err != nil {
		return false, fmt.Errorf("subscribers: ask %s: %w", jid, err)
	}
	return first, nil
}

// Granted records that jid let our JID (the service or an author) see its
// presence; revoked (granted false) forgets it.
func (s *RedisStore) Granted(ctx context.Context, jid, ours string, granted bool) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if granted {
			p.HSet(ctx, s.keys.ProbeGrants(), jid, ours)
			p.HSet(ctx, s.keys.State(jid), fieldGranted, ours)
			return nil
		}
		// Without the grant we hear no more of their presence: forget what
		// we knew, so a stale "offline" cannot silence them for good, and
		// allow asking again on their next follow.
		p.HDel(ctx, s.keys.ProbeGrants(), jid)
		p.Del(ctx, s.keys.Resources(jid))
		p.HDel(ctx, s.keys.State(jid), fieldPresence, fieldAsked, fieldGranted)
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribers: grant of %s: %w", jid, err)
	}
	return nil
}

// ProbeTargets returns one HSCAN page of the JIDs that granted us their
// presence, as pairs {their JID, our JID}, and the next cursor (0 at the end).
func (s *RedisStore) ProbeTargets(ctx context.Context, cursor uint64, count int) ([][2]string, uint64, error) {
	kv, next, err := s.rdb.HScan(ctx, s.keys.ProbeGrants(), cursor, "", int64(count)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("subscribers: probe targets: %w", err)
	}
	out := make([][2]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out, next, nil
}

// FollowingCount returns how many authors a JID follows.
func (s *RedisStore) FollowingCount(ctx context.Context, jid string) (int64, error) {
	n, err := s.rdb.HLen(ctx, s.keys.Following(jid)).Result()
	if err != nil {
		return 0, fmt.Errorf("subscribers: following count of %s: %w", jid, err)
	}
	return n, nil
}
