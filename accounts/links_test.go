package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
)

// linked lists the author's JIDs as JIDs reports them.
func linked(t *testing.T, s *RedisStore, user string, now time.Time) []string {
	t.Helper()
	var out []string
	err := s.JIDs(context.Background(), user, now, func(jid string, verified bool, at time.Time) {
		out = append(out, fmt.Sprintf("%s %v %s", jid, verified, at.Format(time.RFC3339)))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func refusal(err error) string {
	var c *CodeError
	if errors.As(err, &c) {
		r, left := c.VerifyRefused()
		if r == "wrong" {
			return fmt.Sprintf("%s %d", r, left)
		}
		return r
	}
	return fmt.Sprintf("not a refusal: %v", err)
}

func TestJIDLinks(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, u := range []string{"alice", "carol"} {
		if err := s.CreateUser(ctx, u, u, "hash-"+u, now); err != nil {
			t.Fatal(err)
		}
	}
	const bob = "bob@example.org"

	if _, _, err := s.NewJIDCode(ctx, "nobody", bob, now, time.Minute); !errors.Is(err, starling.ErrUnknownUser) {
		t.Fatalf("code for a missing author: %v", err)
	}
	if _, _, err := s.VerifyJID(ctx, bob, "ABCDEFGH", now); refusal(err) != "none" {
		t.Fatalf("verify with no code waiting: %v", err)
	}
	old, _, err := s.NewJIDCode(ctx, "alice", bob, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, expires, err := s.NewJIDCode(ctx, "alice", bob, now, time.Minute) // voids the first
	if err != nil || !expires.Equal(now.Add(time.Minute)) || len(code) != codeLength || strings.Trim(code, codeAlphabet) != "" {
		t.Fatalf("code %q expires %v: %v", code, expires, err)
	}
	if got := linked(t, s, "alice", now); !slices.Equal(got, []string{bob + " false 2026-01-02T03:05:05Z"}) {
		t.Fatalf("JIDs with a code waiting: %q", got)
	}
	if raw, _ := s.rdb.HGet(ctx, s.keys.JIDLinks(bob), "alice").Result(); strings.Contains(raw, code) {
		t.Fatal("the code is stored as it is, not hashed")
	}
	if _, _, err := s.VerifyJID(ctx, bob, old, now); refusal(err) != "wrong 4" {
		t.Fatalf("the voided code: %s", refusal(err))
	}
	if _, _, err := s.VerifyJID(ctx, "eve@example.org", code, now); refusal(err) != "none" {
		t.Fatalf("another JID sending the code: %s", refusal(err))
	}
	// Typed in lower case with a space: the same code.
	typed := strings.ToLower(code[:4]) + " " + code[4:]
	user, already, err := s.VerifyJID(ctx, bob, typed, now.Add(59*time.Second))
	if err != nil || user != "alice" || already {
		t.Fatalf("verify: %q %v %v", user, already, err)
	}
	if user, already, err := s.VerifyJID(ctx, bob, code, now.Add(2*time.Minute)); err != nil || user != "alice" || !already {
		t.Fatalf("the same code again: %q %v %v", user, already, err)
	}
	if got := linked(t, s, "alice", now.Add(time.Hour)); !slices.Equal(got, []string{bob + " true 2026-01-02T03:05:04Z"}) {
		t.Fatalf("JIDs once verified: %q", got)
	}
	if _, _, err := s.NewJIDCode(ctx, "alice", bob, now, time.Minute); err == nil || !strings.Contains(err.(*LinkError).LinkRefused(), "verified already") {
		t.Fatalf("code for a verified JID: %v", err)
	}
	if a, err := s.VerifiedAuthors(ctx, bob); err != nil || !slices.Equal(a, []string{"alice"}) {
		t.Fatalf("verified authors: %q %v", a, err)
	}

	// Expiry: the right code too late is refused as expired, and the JID
	// is no longer listed.
	late, _, _ := s.NewJIDCode(ctx, "carol", bob, now, time.Minute)
	if _, _, err := s.VerifyJID(ctx, bob, late, now.Add(time.Minute)); refusal(err) != "expired" {
		t.Fatalf("a code at its expiry: %s", refusal(err))
	}
	if got := linked(t, s, "carol", now); len(got) != 0 {
		t.Fatalf("an expired code still listed: %q", got)
	}
	if a, _ := s.VerifiedAuthors(ctx, bob); !slices.Equal(a, []string{"alice"}) {
		t.Fatalf("verified authors after an expired code: %q", a)
	}

	// Brute force: the fifth wrong code in a row voids the codes waiting.
	good, _, _ := s.NewJIDCode(ctx, "carol", bob, now, time.Minute)
	for i := range MaxCodeFailures - 1 {
		if _, _, err := s.VerifyJID(ctx, bob, "WRONG"+fmt.Sprint(i), now); refusal(err) != fmt.Sprintf("wrong %d", MaxCodeFailures-1-i) {
			t.Fatalf("wrong code %d: %s", i+1, refusal(err))
		}
	}
	if _, _, err := s.VerifyJID(ctx, bob, "WRONG", now); refusal(err) != "burned" {
		t.Fatalf("wrong code %d: %s", MaxCodeFailures, refusal(err))
	}
	if _, _, err := s.VerifyJID(ctx, bob, good, now); refusal(err) != "none" {
		t.Fatalf("the right code after the codes were voided: %s", refusal(err))
	}
	// The owner asks again; the count starts afresh.
	good, _, _ = s.NewJIDCode(ctx, "carol", bob, now, time.Minute)
	s.VerifyJID(ctx, bob, "WRONG", now)
	if user, _, err := s.VerifyJID(ctx, bob, good, now); err != nil || user != "carol" {
		t.Fatalf("a new code after the void: %q %v", user, err)
	}
	if a, _ := s.VerifiedAuthors(ctx, bob); !slices.Equal(a, []string{"alice", "carol"}) {
		t.Fatalf("verified authors: %q", a)
	}

	// Mentions: bob's verified JIDs that take them.
	other := "bob@work.example"
	c, _, _ := s.NewJIDCode(ctx, "alice", other, now, time.Minute)
	if jids, err := s.MentionedJIDs(ctx, []string{"alice"}); err != nil || !slices.Equal(jids, []string{bob}) {
		t.Fatalf("mentioned JIDs before verifying the second: %q %v", jids, err)
	}
	s.VerifyJID(ctx, other, c, now)
	if jids, _ := s.MentionedJIDs(ctx, []string{"alice", "carol", "nobody"}); !slices.Equal(jids, []string{bob, other}) {
		t.Fatalf("mentioned JIDs: %q", jids)
	}
	must(t, s.SetMentions(ctx, bob, false))
	if on, err := s.MentionsOn(ctx, bob); err != nil || on {
		t.Fatalf("mentions after off: %v %v", on, err)
	}
	if jids, _ := s.MentionedJIDs(ctx, []string{"alice", "carol"}); !slices.Equal(jids, []string{other}) {
		t.Fatalf("mentioned JIDs with mentions off: %q", jids)
	}
	must(t, s.SetMentions(ctx, bob, true))
	if a, _ := s.VerifiedAuthors(ctx, bob); !slices.Equal(a, []string{"alice", "carol"}) {
		t.Fatalf("the mentions setting shows as an author: %q", a)
	}

	// Unlink, and the account's deletion unlinks the rest.
	if removed, err := s.UnlinkJID(ctx, "carol", bob); err != nil || !removed {
		t.Fatalf("unlink: %v %v", removed, err)
	}
	if removed, _ := s.UnlinkJID(ctx, "carol", bob); removed {
		t.Fatal("second unlink reported a removal")
	}
	if a, _ := s.VerifiedAuthors(ctx, bob); !slices.Equal(a, []string{"alice"}) {
		t.Fatalf("verified authors after unlink: %q", a)
	}
	must(t, s.DeleteUser(ctx, "alice"))
	for _, j := range []string{bob, other} {
		if a, _ := s.VerifiedAuthors(ctx, j); len(a) != 0 {
			t.Fatalf("%s still verified for %q after the account's deletion", j, a)
		}
	}
	if n, _ := s.rdb.Exists(ctx, s.keys.Links("alice")).Result(); n != 0 {
		t.Fatal("j:{alice} left after the account's deletion")
	}
}

func TestLinkCap(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	now := time.Now()
	must(t, s.CreateUser(ctx, "alice", "Alice", "h", now))
	for i := range MaxLinkedJIDs {
		if _, _, err := s.NewJIDCode(ctx, "alice", fmt.Sprintf("j%d@example.org", i), now, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := s.NewJIDCode(ctx, "alice", "one@too.many", now, time.Minute)
	var refused interface{ LinkRefused() string }
	if !errors.As(err, &refused) || !strings.Contains(refused.LinkRefused(), "at most") {
		t.Fatalf("past the cap: %v", err)
	}
	// Codes that expired unused make room again.
	if _, _, err := s.NewJIDCode(ctx, "alice", "one@too.many", now.Add(2*time.Minute), time.Minute); err != nil {
		t.Fatalf("once the other codes expired: %v", err)
	}
	if n, _ := s.rdb.SCard(ctx, s.keys.Links("alice")).Result(); n != 1 {
		t.Fatalf("j:{alice} holds %d JIDs after pruning, want 1", n)
	}
}

func TestDeletedPostKept(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, r)
	must(t, s.CreateUser(ctx, "alice", "Alice", "h", time.Now()))
	post := starling.Post{ID: "01P", Author: "alice", Text: "#go @bob", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	must(t, s.RecordPost(ctx, post))
	if _, ok, err := s.DeletedPost(ctx, "alice", "01P"); ok || err != nil {
		t.Fatalf("a post not being deleted: %v %v", ok, err)
	}
	if _, _, err := s.ReserveRetraction(ctx, "alice", "01P", starling.Post{ID: "01R", Author: "alice", Retracts: "01P"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeletePost(ctx, "alice", "01P"); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.DeletedPost(ctx, "alice", "01P")
	if err != nil || !ok || got.Text != post.Text || !got.CreatedAt.Equal(post.CreatedAt) {
		t.Fatalf("deleted post: %+v %v %v", got, ok, err)
	}
	if ttl, _ := s.rdb.PTTL(ctx, s.keys.DeletedPost("alice", "01P")).Result(); ttl <= 0 || ttl > DefaultIdempotencyTTL {
		t.Fatalf("the copy lives %v", ttl)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
