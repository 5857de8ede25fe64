package subscribers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/accounts"
	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
)

// These tests run the fanout stage on the real Redis store (pager and
// progress); only the batch sink (our own interface) is faked: it stores
// batches as JetStream would, dropping a batch whose message id it has
// already stored.

var errInjected = errors.New("injected failure")

// memSink is a BatchSink that stores batches in memory, deduplicated by
// message id, and can fail or act at a chosen batch.
type memSink struct {
	mu      sync.Mutex
	ids     map[string]bool
	batches []fanout.Batch
	calls   int
	// before runs before the call'th PublishBatch (from 1) stores anything;
	// an error fails the publish. waitErr fails the call'th Wait.
	before  func(call int) error
	waitErr func(call int) error
}

type memPending struct{ err error }

func (p memPending) Wait(context.Context) error { return p.err }

func (s *memSink) PublishBatch(_ context.Context, b fanout.Batch) (fanout.Pending, error) {
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.mu.Unlock()
	if s.before != nil {
		if err := s.before(call); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var werr error
	if s.waitErr != nil {
		werr = s.waitErr(call)
	}
	if werr == nil && !s.ids[b.MsgID()] {
		if s.ids == nil {
			s.ids = map[string]bool{}
		}
		s.ids[b.MsgID()] = true
		b.To = slices.Clone(b.To)
		s.batches = append(s.batches, b)
	}
	return memPending{werr}, nil
}

// received counts the batches stored for each JID.
func (s *memSink) received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := map[string]int{}
	for _, b := range s.batches {
		for _, j := range b.To {
			got[j]++
		}
	}
	return got
}

// faultyProgress fails the failAt'th SaveProgress (from 1), after the
// batches it follows were stored.
type faultyProgress struct {
	*RedisStore
	mu     sync.Mutex
	saves  int
	failAt int
}

func (f *faultyProgress) SaveProgress(ctx context.Context, author, id string, p fanout.Progress) error {
	f.mu.Lock()
	f.saves++
	fail := f.saves == f.failAt
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return f.RedisStore.SaveProgress(ctx, author, id, p)
}

func follower(i int) string { return fmt.Sprintf("f%05d@example.org", i) }

func addFollowers(t *testing.T, s *RedisStore, author string, from, to int) {
	t.Helper()
	var jids []string
	for i := from; i < to; i++ {
		jids = append(jids, follower(i))
	}
	for len(jids) > 0 {
		n := min(len(jids), 1000)
		if _, err := s.AddFollowers(context.Background(), author, jids[:n]); err != nil {
			t.Fatal(err)
		}
		jids = jids[n:]
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestFanoutResumes injects a failure at each step of a fanout of 5,000
// followers (10 pages), changes the follower set and presence, and retries:
// every follower who followed throughout and was deliverable both times
// gets the post, nobody gets it more than twice, and at most one page's
// worth of followers get it twice.
func TestFanoutResumes(t *testing.T) {
	r := testenv.StartRedis(t)
	const n = 5000
	const failPage = 4 // 1-based: the fourth batch
	cases := []struct {
		name  string
		sink  func() *memSink
		fault int // the SaveProgress call to fail, 0 for none
		// retryAfterSuccess: the first attempt succeeds, and the post is
		// redelivered anyway (the gateway died after the progress was
		// saved, before the post's ack).
		retryAfterSuccess bool
	}{
		{name: "between pages", sink: func() *memSink {
			return &memSink{before: func(call int) error {
				if call == failPage {
					return errInjected
				}
				return nil
			}}
		}},
		{name: "batch not stored", sink: func() *memSink {
			return &memSink{waitErr: func(call int) error {
				if call == failPage {
					return errInjected
				}
				return nil
			}}
		}},
		{name: "between publish and progress", sink: func() *memSink { return &memSink{} }, fault: failPage},
		{name: "after progress, before the post's ack", sink: func() *memSink { return &memSink{} }, retryAfterSuccess: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, r)
			addFollowers(t, s, "star", 0, n)
			sink := tc.sink()
			prog := &faultyProgress{RedisStore: s, failAt: tc.fault}
			post := starling.Post{ID: "01POST", Author: "star", Text: "hi"}
			fan := fanout.NewFanout(s, sink, nil, fanout.WithTracking(prog, nil))
			_, err := fan.Fan(ctx, post, nil)
			if tc.retryAfterSuccess != (err == nil) {
				t.Fatalf("first attempt: %v", err)
			}
			saved, err := s.Progress(ctx, "star", post.ID)
			must(t, err)
			if !tc.retryAfterSuccess && (saved.Done || saved.After == "") {
				t.Fatalf("progress after a failed attempt: %+v", saved)
			}
			// Between the attempts: unfollows before and after the cursor,
			// new follows on both sides, a follower going offline and one
			// pausing after it, one coming back.
			changed := map[string]bool{}
			for _, i := range []int{10, 1600, 1999, 2000, 2100, 4000, 4999} {
				_, err := s.Unfollow(ctx, "star", follower(i))
				must(t, err)
				changed[follower(i)] = true
			}
			for _, j := range []string{"a-new@example.org", "f01800x@example.org", "zz-new@example.org"} {
				_, err := s.Follow(ctx, "star", j)
				must(t, err)
				changed[j] = true
			}
			must(t, s.Granted(ctx, follower(3000), "mb.example", true))
			_, err = s.SetPresence(ctx, follower(3000), "", false)
			must(t, err)
			must(t, s.SetPaused(ctx, follower(3500), true))
			changed[follower(3000)], changed[follower(3500)] = true, true

			batches, err := fan.Fan(ctx, post, nil)
			must(t, err)
			if tc.retryAfterSuccess && batches != 0 {
				t.Fatalf("a completed fanout published %d batches again", batches)
			}
			if p, _ := s.Progress(ctx, "star", post.ID); !p.Done {
				t.Fatalf("progress after the retry: %+v", p)
			}
			got := sink.received()
			twice := 0
			for j, c := range got {
				if c > 2 {
					t.Errorf("%s got the post %d times", j, c)
				}
				if c == 2 {
					twice++
				}
			}
			if twice > fanout.BatchSize {
				t.Errorf("%d followers got the post twice: more than one page", twice)
			}
			for i := range n {
				if j := follower(i); !changed[j] && got[j] == 0 {
					t.Errorf("%s never got the post", j)
				}
			}
			t.Logf("%d batches stored, %d followers twice", len(sink.batches), twice)
		})
	}
}

// TestFanoutSurvivesRedisRestart restarts Redis (AOF on) in the middle of
// the walk of 20,000 followers: the walk fails or goes on, and with its
// retries every follower gets the post, at most one page twice.
func TestFanoutSurvivesRedisRestart(t *testing.T) {
	r := testenv.StartRedisWith(t, testenv.RedisOptions{AppendOnly: true})
	ctx := context.Background()
	s := newStore(t, r)
	const n = 20_000
	addFollowers(t, s, "star", 0, n)
	must(t, s.rdb.Do(ctx, "BGREWRITEAOF").Err()) // the follows are on disk either way; this makes the restart quick
	restarted := false
	sink := &memSink{before: func(call int) error {
		if call == 8 && !restarted {
			restarted = true
			r.Restart(t)
		}
		return nil
	}}
	fan := fanout.NewFanout(s, sink, nil, fanout.WithTracking(s, nil))
	post := starling.Post{ID: "01POST", Author: "star", Text: "hi"}
	attempts := 0
	for {
		attempts++
		_, err := fan.Fan(ctx, post, nil)
		if err == nil {
			break
		}
		if attempts == 5 {
			t.Fatalf("fanout still failing after %d attempts: %v", attempts, err)
		}
		t.Logf("attempt %d: %v", attempts, err)
	}
	if !restarted {
		t.Fatal("redis was not restarted mid-walk")
	}
	got := sink.received()
	twice := 0
	for i := range n {
		switch got[follower(i)] {
		case 0:
			t.Errorf("%s never got the post", follower(i))
		case 1:
		case 2:
			twice++
		default:
			t.Errorf("%s got the post %d times", follower(i), got[follower(i)])
		}
	}
	if twice > fanout.BatchSize {
		t.Errorf("%d followers got the post twice", twice)
	}
	t.Logf("%d attempts, %d followers, %d twice", attempts, len(got), twice)
}

// sender records what the send stage delivers.
type sender struct {
	mu  sync.Mutex
	got []string
}

func (s *sender) WaitReady(context.Context) error { return nil }

func (s *sender) DeliverBatch(_ context.Context, b fanout.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, b.MsgID())
	return nil
}

func (s *sender) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func newAccounts(t *testing.T, s *RedisStore) *accounts.RedisStore {
	t.Helper()
	acc, err := accounts.NewRedisStore(s.rdb, s, accounts.RedisConfig{Prefix: s.keys.Prefix})
	must(t, err)
	return acc
}

// TestRetractions: a retraction reaches paused and offline followers; a
// post deleted mid-fanout stops paging and its remaining batches are not
// sent; a retraction's fanout waits while a batch of its post is being
// sent and starts once none is.
func TestRetractions(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()

	t.Run("reaches every follower", func(t *testing.T) {
		s := newStore(t, r)
		addFollowers(t, s, "star", 0, 1200)
		must(t, s.SetPaused(ctx, follower(5), true))
		must(t, s.Granted(ctx, follower(700), "mb.example", true))
		_, err := s.SetPresence(ctx, follower(700), "", false)
		must(t, err)
		sink := &memSink{}
		fan := fanout.NewFanout(s, sink, nil, fanout.WithTracking(s, newAccounts(t, s)))
		_, err = fan.Fan(ctx, starling.Post{ID: "01RETR", Author: "star", Retracts: "01POST"}, nil)
		must(t, err)
		if got := sink.received(); len(got) != 1200 || got[follower(5)] != 1 || got[follower(700)] != 1 {
			t.Fatalf("retraction reached %d of 1200 followers (paused: %d, offline: %d)", len(got), got[follower(5)], got[follower(700)])
		}
		post := starling.Post{ID: "01POST2", Author: "star", Text: "hi"}
		sink = &memSink{}
		_, err = fanout.NewFanout(s, sink, nil, fanout.WithTracking(s, newAccounts(t, s))).Fan(ctx, post, nil)
		must(t, err)
		if got := sink.received(); len(got) != 1198 {
			t.Fatalf("a post reached %d followers, want the 1198 not paused or offline", len(got))
		}
	})

	t.Run("deleted mid-fanout", func(t *testing.T) {
		s := newStore(t, r)
		acc := newAccounts(t, s)
		addFollowers(t, s, "star", 0, 5000)
		post := starling.Post{ID: "01POST", Author: "star", Text: "hi"}
		retraction := starling.Post{ID: "01RETR", Author: "star", Retracts: post.ID}
		sink := &memSink{before: func(call int) error {
			if call == 3 {
				_, _, err := acc.ReserveRetraction(ctx, "star", post.ID, retraction)
				return err
			}
			return nil
		}}
		track := fanout.WithTracking(s, acc)
		n, err := fanout.NewFanout(s, sink, nil, track).Fan(ctx, post, nil)
		must(t, err)
		if n != 3 {
			t.Fatalf("%d batches published, want 3: paging goes on after the deletion began", n)
		}
		if p, _ := s.Progress(ctx, "star", post.ID); !p.Done {
			t.Fatalf("progress of the stopped fanout: %+v", p)
		}
		// The send stage drops every batch of the post, and sends the
		// retraction's.
		snd := &sender{}
		send := fanout.NewSend(snd, 0, nil, track)
		for _, b := range sink.batches {
			must(t, send.Deliver(ctx, b))
		}
		rb := fanout.Batch{Post: retraction, To: []string{follower(1)}}
		must(t, send.Deliver(ctx, rb))
		if got := snd.delivered(); !slices.Equal(got, []string{rb.MsgID()}) {
			t.Fatalf("delivered %v, want only the retraction", got)
		}
		if c, _ := s.Sending(ctx, "star", post.ID); c != 0 {
			t.Fatalf("%d sends still counted", c)
		}
	})

	t.Run("never overtakes its post", func(t *testing.T) {
		s := newStore(t, r)
		acc := newAccounts(t, s)
		addFollowers(t, s, "star", 0, 10)
		post := starling.Post{ID: "01POST", Author: "star", Text: "hi"}
		retraction := starling.Post{ID: "01RETR", Author: "star", Retracts: post.ID}
		// A batch of the post is being sent (it began before the deletion).
		must(t, s.BeginSend(ctx, "star", post.ID))
		_, _, err := acc.ReserveRetraction(ctx, "star", post.ID, retraction)
		must(t, err)
		var mu sync.Mutex
		ticks, sendingAtPublish := 0, int64(-1)
		sink := &memSink{before: func(int) error {
			c, err := s.Sending(ctx, "star", post.ID)
			mu.Lock()
			sendingAtPublish = c
			mu.Unlock()
			return err
		}}
		done := make(chan error, 1)
		go func() {
			_, err := fanout.NewFanout(s, sink, nil, fanout.WithTracking(s, acc)).Fan(ctx, retraction, func() {
				mu.Lock()
				ticks++
				mu.Unlock()
			})
			done <- err
		}()
		// Still waiting (and keeping its message alive) several polls later.
		testenv.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return ticks >= 3 }, "the retraction is not waiting")
		if len(sink.received()) != 0 {
			t.Fatal("the retraction was fanned out while a batch of its post was being sent")
		}
		must(t, s.EndSend(ctx, "star", post.ID))
		select {
		case err := <-done:
			must(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("the retraction did not start once its post's send ended")
		}
		if got := sink.received(); len(got) != 10 || sendingAtPublish != 0 {
			t.Fatalf("retraction reached %d followers, published while %d sends of the post were counted", len(got), sendingAtPublish)
		}
		// A send that begins after the deletion started is dropped.
		snd := &sender{}
		must(t, fanout.NewSend(snd, 0, nil, fanout.WithTracking(s, acc)).Deliver(ctx, fanout.Batch{Post: post, Page: 1, To: []string{follower(1)}}))
		if len(snd.delivered()) != 0 {
			t.Fatal("a batch of a deleted post was sent")
		}
	})
}
