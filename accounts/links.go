package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"starling.dev/starling"
)

// An author may link Jabber addresses to her account, and then post by IM
// from them. The owner asks for a code for a bare JID (NewJIDCode); the
// code reaches the JID's holder some other way, and the JID sends it back
// ("verify <code>"): the XMPP server vouches for the sender's address, the
// code for the owner's consent.
//
// jl:{<jid>} is the truth about a JID's links, one hash so that checking a
// code and marking the link verified is one script on one slot: a field per
// author, "c:<code sha256>:<expiry ms>" while a code waits and
// "v:<code sha256>:<verified ms>" once verified, and "!fails", the wrong
// codes sent in a row (usernames never start with "!"). j:{<user>} indexes
// the JIDs an author linked or asked a code for; it is written first and
// emptied last, so it may name a JID with no link left (a code that
// expired, a crash between the two writes), which readers skip.

// Bounds of JID links, written once here.
const (
	// MaxLinkedJIDs is how many JIDs one author may link or have codes
	// waiting for.
	MaxLinkedJIDs = 10
	// MaxCodeFailures is how many wrong codes in a row a JID may send:
	// the last one voids every code waiting for it.
	MaxCodeFailures = 5
)

// codeAlphabet has no 0, O, 1 or I, which read alike; 32 symbols, so a
// random byte picks one uniformly. Eight of them carry 40 bits.
const (
	codeAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	codeLength   = 8
)

// Fields of jl:{<jid>} that are not usernames.
const (
	fieldFails      = "!fails"
	fieldNoMentions = "!nomentions"
)

// LinkError is NewJIDCode's refusal. Its LinkRefused method lets a caller
// that does not import this package tell it from a failure of the store.
type LinkError struct{ Reason string }

func (e *LinkError) Error() string { return "accounts: " + e.Reason }

// LinkRefused returns why the code was refused, for the author to read.
func (e *LinkError) LinkRefused() string { return e.Reason }

// CodeError is VerifyJID's refusal of a code. Its VerifyRefused method
// lets a caller that does not import this package read it.
type CodeError struct {
	// Reason is "none" (no code waits for the JID), "wrong", "expired"
	// (the code was right but too late), or "burned" (that was the
	// MaxCodeFailures-th wrong code in a row: the codes waiting are void).
	Reason string
	// Left is how many wrong codes the JID may still send (Reason "wrong").
	Left int
}

func (e *CodeError) Error() string { return "accounts: code refused: " + e.Reason }

// VerifyRefused returns the reason and, for "wrong", the tries left.
func (e *CodeError) VerifyRefused() (reason string, left int) { return e.Reason, e.Left }

// newCode returns a fresh code: codeLength symbols of codeAlphabet from
// crypto/rand.
func newCode() string {
	var b [codeLength]byte
	_, _ = rand.Read(b[:]) // never fails: it crashes the program rather than return predictable bytes
	for i := range b {
		b[i] = codeAlphabet[b[i]%byte(len(codeAlphabet))]
	}
	return string(b[:])
}

// codeHash is what is stored of a code: SHA-256 of the code as typed,
// upper-cased and without spaces or dashes. A code lives minutes, so a
// plain hash keeps it out of Redis well enough.
func codeHash(code string) string {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// indexLink adds ARGV[1] to the author's JIDs (KEYS[2]) if the account
// (KEYS[1]) exists: 1 added, 0 there already, -1 full, -2 no account.
var indexLink = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return -1 end
redis.call('SADD', KEYS[2], ARGV[1])
return 1`)

// setCode makes ARGV[2] the code waiting for the JID to link it to the
// author ARGV[1], unless that link is verified (0). A new code forgives
// the wrong ones sent before it.
var setCode = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, 2) == 'v:' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'c:' .. ARGV[2] .. ':' .. ARGV[3])
redis.call('HDEL', KEYS[1], '!fails')
return 1`)

// NewJIDCode makes a code that links the bare JID to the author once the
// JID sends it back, valid for ttl from now (the caller's setting); a code
// asked for before is void. It returns starling.ErrUnknownUser, or a
// *LinkError when the JID is verified already or the author has
// MaxLinkedJIDs JIDs.
func (s *RedisStore) NewJIDCode(ctx context.Context, user, jid string, now time.Time, ttl time.Duration) (code string, expires time.Time, err error) {
	n, err := s.indexLink(ctx, user, jid)
	if err == nil && n == -1 {
		// Full: JIDs whose code expired unused still count until pruned.
		if err = s.pruneLinks(ctx, user, now); err == nil {
			n, err = s.indexLink(ctx, user, jid)
		}
	}
	switch {
	case err != nil:
		return "", time.Time{}, fmt.Errorf("accounts: code for %s: %w", jid, err)
	case n == -2:
		return "", time.Time{}, starling.ErrUnknownUser
	case n == -1:
		return "", time.Time{}, &LinkError{Reason: fmt.Sprintf("an author may link at most %d JIDs; unlink one first", MaxLinkedJIDs)}
	}
	code = newCode()
	expires = now.Add(ttl).Truncate(time.Millisecond)
	set, err := setCode.Run(ctx, s.rdb, []string{s.keys.JIDLinks(jid)}, user, codeHash(code), expires.UnixMilli()).Int()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: code for %s: %w", jid, err)
	}
	if set == 0 {
		return "", time.Time{}, &LinkError{Reason: jid + " is verified already"}
	}
	return code, expires, nil
}

func (s *RedisStore) indexLink(ctx context.Context, user, jid string) (int, error) {
	return indexLink.Run(ctx, s.rdb, []string{s.keys.User(user), s.keys.Links(user)}, jid, MaxLinkedJIDs).Int()
}

// link is one field of jl:{<jid>}, parsed.
type link struct {
	verified bool
	hash     string
	at       time.Time // expiry of a code; when verified, the time of it
}

func parseLink(v string) (link, bool) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 || (parts[0] != "c" && parts[0] != "v") {
		return link{}, false
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return link{}, false
	}
	return link{verified: parts[0] == "v", hash: parts[1], at: time.UnixMilli(ms).UTC()}, true
}

// live reports whether the link is verified or its code still waits.
func (l link) live(now time.Time) bool { return l.verified || now.Before(l.at) }

// links reads the author's link with each of the JIDs of j:{<user>}.
func (s *RedisStore) links(ctx context.Context, user string) ([]string, []link, error) {
	jids, err := s.rdb.SMembers(ctx, s.keys.Links(user)).Result()
	if err != nil || len(jids) == 0 {
		return nil, nil, err
	}
	sort.Strings(jids)
	cmds := make([]*redis.StringCmd, len(jids))
	// Each command's error is read below: a missing field is redis.Nil.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, j := range jids {
			cmds[i] = p.HGet(ctx, s.keys.JIDLinks(j), user)
		}
		return nil
	})
	out := make([]link, len(jids))
	for i, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, err
		}
		out[i], _ = parseLink(c.Val()) // none: the zero link, not live
	}
	return jids, out, nil
}

// JIDs calls each for every JID linked to the author, in JID order:
// verified (at is when) or with a code waiting (at is its expiry). JIDs
// whose code expired unused are left out.
func (s *RedisStore) JIDs(ctx context.Context, user string, now time.Time, each func(jid string, verified bool, at time.Time)) error {
	jids, links, err := s.links(ctx, user)
	if err != nil {
		return fmt.Errorf("accounts: JIDs of %q: %w", user, err)
	}
	for i, l := range links {
		if l.live(now) {
			each(jids[i], l.verified, l.at)
		}
	}
	return nil
}

// pruneLinks drops from j:{<user>} the JIDs with no live link.
func (s *RedisStore) pruneLinks(ctx context.Context, user string, now time.Time) error {
	jids, links, err := s.links(ctx, user)
	if err != nil {
		return err
	}
	var dead []any
	for i, l := range links {
		if !l.live(now) {
			dead = append(dead, jids[i])
		}
	}
	if len(dead) == 0 {
		return nil
	}
	return s.rdb.SRem(ctx, s.keys.Links(user), dead...).Err()
}

// UnlinkJID ends the link between the author and the JID, verified or
// not: the JID can no longer post as the author, nor get her mentions. It
// reports whether there was a link.
func (s *RedisStore) UnlinkJID(ctx context.Context, user, jid string) (bool, error) {
	n, err := s.rdb.HDel(ctx, s.keys.JIDLinks(jid), user).Result()
	if err != nil {
		return false, fmt.Errorf("accounts: unlink %s from %q: %w", jid, user, err)
	}
	if err := s.rdb.SRem(ctx, s.keys.Links(user), jid).Err(); err != nil {
		return false, fmt.Errorf("accounts: unlink %s from %q: %w", jid, user, err)
	}
	return n == 1, nil
}

// dropLinks unlinks every JID of the author, for DeleteUser.
func (s *RedisStore) dropLinks(ctx context.Context, user string) error {
	jids, err := s.rdb.SMembers(ctx, s.keys.Links(user)).Result()
	if err != nil {
		return fmt.Errorf("accounts: JIDs of %q: %w", user, err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, j := range jids {
			p.HDel(ctx, s.keys.JIDLinks(j), user)
		}
		p.Unlink(ctx, s.keys.Links(user))
		return nil
	})
	if err != nil {
		return fmt.Errorf("accounts: unlink the JIDs of %q: %w", user, err)
	}
	return nil
}

// verifyCode checks the code hash ARGV[1] against the codes waiting for
// the JID at time ARGV[2] (ms). It returns {"ok", user} (now verified),
// {"already", user} (the code that verified that link, sent again),
// {"expired"}, {"none"}, {"wrong", tries left} or {"burned"}. Codes
// found expired are dropped.
var verifyCode = redis.NewScript(`
local now = tonumber(ARGV[2])
local h = redis.call('HGETALL', KEYS[1])
local waiting, expired = {}, 0
for i = 1, #h, 2 do
  local user, v = h[i], h[i + 1]
  local kind, hash, t = string.match(v, '^(%a):(%x+):(%d+)$')
  if kind == 'v' and hash == ARGV[1] then
    return {'already', user}
  elseif kind == 'c' then
    if tonumber(t) <= now then
      redis.call('HDEL', KEYS[1], user)
      if hash == ARGV[1] then return {'expired'} end
      expired = expired + 1
    elseif hash == ARGV[1] then
      redis.call('HSET', KEYS[1], user, 'v:' .. hash .. ':' .. ARGV[2])
      redis.call('HDEL', KEYS[1], '!fails')
      return {'ok', user}
    else
      waiting[#waiting + 1] = user
    end
  end
end
if #waiting == 0 then
  if expired > 0 then return {'expired'} end
  return {'none'}
end
local n = redis.call('HINCRBY', KEYS[1], '!fails', 1)
if n >= tonumber(ARGV[3]) then
  redis.call('HDEL', KEYS[1], '!fails', unpack(waiting))
  return {'burned'}
end
return {'wrong', tonumber(ARGV[3]) - n}`)

// VerifyJID checks a code the bare JID sent. On success it returns the
// author the JID is now verified for; already is set when the JID sent the
// code of a link verified before. A refusal is a *CodeError. Every wrong
// code counts: the MaxCodeFailures-th in a row voids the codes waiting for
// the JID.
func (s *RedisStore) VerifyJID(ctx context.Context, jid, code string, now time.Time) (user string, already bool, err error) {
	res, err := verifyCode.Run(ctx, s.rdb, []string{s.keys.JIDLinks(jid)}, codeHash(code), now.UnixMilli(), MaxCodeFailures).Slice()
	if err != nil || len(res) == 0 {
		return "", false, fmt.Errorf("accounts: verify %s: %w", jid, err)
	}
	kind, _ := res[0].(string)
	switch kind {
	case "ok", "already":
		user, _ = res[1].(string)
		return user, kind == "already", nil
	case "wrong":
		left, _ := res[1].(int64)
		return "", false, &CodeError{Reason: kind, Left: int(left)}
	default:
		return "", false, &CodeError{Reason: kind}
	}
}

// VerifiedAuthors returns the authors the bare JID is verified for, sorted.
func (s *RedisStore) VerifiedAuthors(ctx context.Context, jid string) ([]string, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.JIDLinks(jid)).Result()
	if err != nil {
		return nil, fmt.Errorf("accounts: authors of %s: %w", jid, err)
	}
	var users []string
	for u, v := range h {
		if l, ok := parseLink(v); ok && l.verified {
			users = append(users, u)
		}
	}
	sort.Strings(users)
	return users, nil
}

// SetMentions records whether the JID wants the posts that mention an
// author it is verified for ("mentions on", the default) or not.
func (s *RedisStore) SetMentions(ctx context.Context, jid string, on bool) error {
	var err error
	if on {
		err = s.rdb.HDel(ctx, s.keys.JIDLinks(jid), fieldNoMentions).Err()
	} else {
		err = s.rdb.HSet(ctx, s.keys.JIDLinks(jid), fieldNoMentions, "1").Err()
	}
	if err != nil {
		return fmt.Errorf("accounts: mentions of %s: %w", jid, err)
	}
	return nil
}

// MentionsOn reports whether the JID takes mentions.
func (s *RedisStore) MentionsOn(ctx context.Context, jid string) (bool, error) {
	off, err := s.rdb.HExists(ctx, s.keys.JIDLinks(jid), fieldNoMentions).Result()
	if err != nil {
		return false, fmt.Errorf("accounts: mentions of %s: %w", jid, err)
	}
	return !off, nil
}

// MentionedJIDs returns the JIDs verified for any of the users that take
// mentions, sorted, without repeats: two round trips, the users' j: sets
// and then each JID's link and setting.
func (s *RedisStore) MentionedJIDs(ctx context.Context, users []string) ([]string, error) {
	if len(users) == 0 {
		return nil, nil
	}
	sets := make([]*redis.StringSliceCmd, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			sets[i] = p.SMembers(ctx, s.keys.Links(u))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: mentioned JIDs: %w", err)
	}
	type pair struct {
		jid string
		cmd *redis.SliceCmd
	}
	var pairs []pair
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			for _, j := range sets[i].Val() {
				pairs = append(pairs, pair{j, p.HMGet(ctx, s.keys.JIDLinks(j), u, fieldNoMentions)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: mentioned JIDs: %w", err)
	}
	var jids []string
	for _, pr := range pairs {
		v := pr.cmd.Val()
		state, _ := v[0].(string)
		if l, ok := parseLink(state); ok && l.verified && v[1] == nil {
			jids = append(jids, pr.jid)
		}
	}
	slices.Sort(jids)
	return slices.Compact(jids), nil
}
