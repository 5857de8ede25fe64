package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling/fanout"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/internal/testenv/stack"
)

// SinkDomain is the component domain of the counting sink: the followers
// are f<i>@SinkDomain.
const SinkDomain = "sink.localhost"

// Author is the author whose one post each row follows.
const Author = "star"

// Phase is the stage a fault is meant for.
type Phase string

const (
	// PhaseFanout injects the fault while the fanout stage holds the post
	// (delivered to a fanout worker, not acknowledged) mid-way (at least
	// one of its batches stored, fewer than its followers need) and the
	// sink has counted less than a fifth of the followers.
	PhaseFanout Phase = "fanout"
	// PhaseSend injects it once the fanout stage has acknowledged the post,
	// while the sink has counted less than four fifths: only sends remain.
	PhaseSend Phase = "send"
)

// Fault is one kind of failure: Inject puts it in place, Recover restarts
// what it stopped (nil when the fault ends by itself).
type Fault struct {
	Name    string
	Inject  func(t testenv.TB, r *Run) error
	Recover func(t testenv.TB, r *Run)
}

// Faults are the rows of the suite, in order.
var Faults = []Fault{
	{Name: "kill9", Inject: func(_ testenv.TB, r *Run) error { return r.Stack.Gateway.Kill() },
		Recover: func(t testenv.TB, r *Run) { r.Stack.StartGatewayAgain(t) }},
	{Name: "sigterm", Inject: func(_ testenv.TB, r *Run) error {
		start := time.Now()
		if err := r.Stack.Gateway.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		if !r.Stack.Gateway.WaitExit(60 * time.Second) {
			return errors.New("the gateway did not exit within 60 s of SIGTERM")
		}
		r.Note("gateway exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
		return nil
	}, Recover: func(t testenv.TB, r *Run) { r.Stack.StartGatewayAgain(t) }},
	{Name: "xmpp-restart", Inject: func(t testenv.TB, r *Run) error {
		// The gateway is held (SIGSTOP) while the server restarts and until
		// the sink has logged in again. The sink stands for the followers'
		// clients, which are back before deliveries resume in life; were the
		// gateway first, the server would bounce its deliveries as if to an
		// absent component, a loss of the test's making. What the row
		// tests stays: the stanzas the server had accepted die with it, and
		// the gateway must find out and send them again.
		g := r.Stack.Gateway
		if err := g.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		logins := r.Sink.connects.Load()
		r.Stack.XMPP.Restart(t) // stop (stanzas it accepted die with it) and start
		testenv.Eventually(t, 30*time.Second, func() bool { return r.Sink.connects.Load() > logins },
			"the sink did not log in again after the server restart")
		return g.Signal(syscall.SIGCONT)
	}},
	{Name: "redis-restart", Inject: func(_ testenv.TB, r *Run) error { return r.Stack.Redis.Stop() },
		Recover: func(t testenv.TB, r *Run) { r.Stack.Redis.Start(t) }},
	{Name: "redis-pause", Inject: func(_ testenv.TB, r *Run) error {
		return r.Stack.RDB.Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err()
	}},
	{Name: "nats-restart", Inject: func(_ testenv.TB, r *Run) error { return r.Stack.NATSProc.Stop() },
		Recover: func(t testenv.TB, r *Run) { r.Stack.NATSProc.Start(t) }},
}

// FaultNamed returns the fault called name.
func FaultNamed(name string) (Fault, bool) {
	for _, f := range Faults {
		if f.Name == name {
			return f, true
		}
	}
	return Fault{}, false
}

// Config is one row.
type Config struct {
	Server    string // "prosody" or "ejabberd"
	Followers int
	Fault     Fault
	Phase     Phase
	// Drain bounds the wait for the pipeline to drain after the fault.
	Drain time.Duration
}

// Result is one row as measured.
type Result struct {
	Server, Fault string
	Phase         Phase
	Followers     int
	// Delivered is how many of the original followers got the post,
	// Lost how many did not, Duplicates how many messages beyond one per
	// recipient arrived (late followers included).
	Delivered, Lost, Duplicates int
	// LongestStall is the longest time the post went without a delivery at
	// the sink, from its acceptance to its last message: the wait for the
	// first message counts, as do gaps between two messages.
	LongestStall time.Duration
	// FirstAfter is from the post's acceptance to its first delivery.
	FirstAfter time.Duration
	// Landed says the fault met the stage it was meant for; Evidence is what
	// showed it.
	Landed   bool
	Evidence string
	// Follows made during the run (admin PUT) and how many of those late
	// followers got the post; presence stanzas sent.
	Follows, FollowErrors, LateServed, Presences int
	Drained                                      bool
	// Took is from the post's acceptance to its last delivery.
	Took  time.Duration
	Notes []string
}

// Run is one row in progress.
type Run struct {
	Stack *stack.Stack
	Sink  *Sink
	cfg   Config
	notes []string
	mu    sync.Mutex
}

// Note adds a line to the row's notes.
func (r *Run) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// componentAddr is where a component for domain connects on server.
func componentAddr(server testenv.XMPPServer, domain string) string {
	if c, ok := server.(interface{ ComponentAddrOf(string) string }); ok {
		return c.ComponentAddrOf(domain)
	}
	return server.Info().ComponentAddr
}

// StartSystem starts the XMPP server named, with the sink's domain
// declared, and the whole stack on it as an operator runs it: gateway and
// API as separate processes, an external nats-server, Redis with AOF. The
// counting sink is connected before it returns.
func StartSystem(t testenv.TB, server string, env map[string]string) (*stack.Stack, *Sink) {
	t.Helper()
	var srv testenv.XMPPServer
	switch server {
	case "prosody":
		srv = testenv.StartProsody(t, testenv.WithComponents(SinkDomain))
	case "ejabberd":
		srv = testenv.StartEjabberd(t, testenv.WithComponents(SinkDomain))
	default:
		t.Fatalf("chaos: unknown XMPP server %q", server)
	}
	e := map[string]string{
		// The load below is the test's own; only the limits' tests meet them.
		"STARLING_RATE_IP": "0", "STARLING_RATE_TOKEN": "0",
		"STARLING_COMMAND_RATE": "50", "STARLING_COMMAND_BURST": "50",
	}
	for k, v := range env {
		e[k] = v
	}
	s := stack.StartStack(t, stack.Options{
		XMPP: srv, Processes: true, ExternalNATS: true, LogLevel: "info", Env: e,
		Redis: testenv.RedisOptions{AppendOnly: true},
	})
	sink := StartSink(t, componentAddr(srv, SinkDomain), srv.Info().Secret, SinkDomain)
	return s, sink
}

// Followers returns f0..f(n-1) at the sink's domain.
func Followers(n int) []string {
	jids := make([]string, n)
	for i := range jids {
		jids[i] = fmt.Sprintf("f%d@%s", i, SinkDomain)
	}
	return jids
}

// LoadFollowers makes jids follow author, straight into Redis.
func LoadFollowers(t testenv.TB, s *stack.Stack, author string, jids []string) {
	t.Helper()
	for i := 0; i < len(jids); i += 5000 {
		if _, err := s.Graph.AddFollowers(context.Background(), author, jids[i:min(i+5000, len(jids))]); err != nil {
			t.Fatalf("chaos: followers: %v", err)
		}
	}
}

// Execute runs one row: a fresh system, one post to cfg.Followers sink
// followers with follows and presence streaming in, the fault injected in
// cfg.Phase, recovery, and the count once the pipeline has drained.
func Execute(t testenv.TB, cfg Config) Result {
	t.Helper()
	if cfg.Drain == 0 {
		cfg.Drain = 3 * time.Minute
	}
	res := Result{Server: cfg.Server, Fault: cfg.Fault.Name, Phase: cfg.Phase, Followers: cfg.Followers}
	s, sink := StartSystem(t, cfg.Server, nil)
	r := &Run{Stack: s, Sink: sink, cfg: cfg}
	tok := s.CreateUser(t, Author, "Star")
	followers := Followers(cfg.Followers)
	LoadFollowers(t, s, Author, followers)

	// Follows through the API and presence through the sink stream in for
	// the whole row, until the count.
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var follows, followErrs, presences atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		streamFollows(bg, s, &follows, &followErrs)
	}()
	go func() {
		defer wg.Done()
		churnPresence(bg, sink, s.Server.ComponentDomain, cfg.Followers, &presences)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopBG()
			wg.Wait()
		}
	}
	t.Cleanup(stop)

	posted := time.Now()
	st := s.Post(t, tok, "one post to many, through a fault")
	res.Landed, res.Evidence = r.trigger(t, st.ID, cfg)
	injected := time.Now()
	if err := cfg.Fault.Inject(t, r); err != nil {
		t.Fatalf("chaos: %s: %v", cfg.Fault.Name, err)
	}
	if c, err := r.fanoutState(); err == nil {
		r.Note("%s after the fault began: fanout acknowledged %v, %d batches stored, sink %d/%d",
			time.Since(injected).Round(time.Millisecond), c.acked, c.batches, sink.Total(st.ID), cfg.Followers)
	}
	if cfg.Fault.Recover != nil {
		cfg.Fault.Recover(t, r)
	}
	res.Drained = r.waitDrained(cfg.Drain)
	if !res.Drained {
		r.Note("the pipeline did not drain within %s", cfg.Drain)
	}
	r.waitQuiet(st.ID, time.Second, 15*time.Second)
	stop()

	tally := sink.Tally(st.ID)
	for _, f := range followers {
		if tally.Counts[f] > 0 {
			res.Delivered++
		}
	}
	res.Lost = cfg.Followers - res.Delivered
	for _, n := range tally.Counts {
		res.Duplicates += n - 1
	}
	res.LateServed = len(tally.Counts) - res.Delivered
	res.LongestStall = tally.LongestGap
	if !tally.Last.IsZero() {
		res.Took = tally.Last.Sub(posted)
		res.FirstAfter = tally.First.Sub(posted)
		res.LongestStall = max(res.LongestStall, res.FirstAfter)
	}
	res.Follows, res.FollowErrors, res.Presences = int(follows.Load()), int(followErrs.Load()), int(presences.Load())
	if tally.LongestGap > 0 {
		r.Note("longest stall began %s after the post", tally.GapStart.Sub(posted).Round(time.Millisecond))
	}
	r.Note("sink logged in %d times", sink.Connects())
	res.Notes = r.notes
	return res
}

// trigger waits for the moment cfg.Phase names and reports whether it came
// and what showed it. It returns at the moment, or when the moment has
// passed (the fault is then injected anyway and the row says it missed).
func (r *Run) trigger(t testenv.TB, postID string, cfg Config) (bool, string) {
	t.Helper()
	n := cfg.Followers
	minBatches := (n + fanout.BatchSize - 1) / fanout.BatchSize
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		got := r.Sink.Total(postID)
		c, err := r.fanoutState()
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		switch cfg.Phase {
		case PhaseFanout:
			if c.acked {
				return false, fmt.Sprintf("missed: the fanout had acknowledged the post (%d batches) before the fault; sink %d/%d", c.batches, got, n)
			}
			// Mid-way: the scan has begun (a batch is stored) and is not
			// over (fewer than the followers need).
			if c.holding && c.batches >= 1 && got < n/5 {
				if c.batches >= uint64(minBatches) {
					return false, fmt.Sprintf("missed: %d batches (all) stored before the fault", c.batches)
				}
				return true, fmt.Sprintf("fanout held the post unacknowledged, %d of ≥%d batches stored; sink %d/%d", c.batches, minBatches, got, n)
			}
		case PhaseSend:
			if c.acked {
				if got < n*4/5 {
					return true, fmt.Sprintf("fanout had acknowledged the post (%d batches); sink %d/%d", c.batches, got, n)
				}
				return false, fmt.Sprintf("missed: sink had %d/%d when the fanout acknowledged", got, n)
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false, "missed: the moment did not come within 30 s"
}

// fanoutView is the fanout stage's state as JetStream shows it.
type fanoutView struct {
	holding bool   // a fanout worker has the post, not acknowledged
	acked   bool   // the post is acknowledged
	batches uint64 // delivery batches stored so far
}

func (r *Run) fanoutState() (fanoutView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var v fanoutView
	c, err := r.Stack.JS.Consumer(ctx, fanout.PostsStream, fanout.FanoutConsumer)
	if err != nil {
		return v, err
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return v, err
	}
	ds, err := r.Stack.JS.Stream(ctx, fanout.DeliveriesStream)
	if err != nil {
		return v, err
	}
	si, err := ds.Info(ctx)
	if err != nil {
		return v, err
	}
	v.holding = ci.NumAckPending > 0
	v.acked = ci.NumAckPending == 0 && ci.NumPending == 0 && ci.AckFloor.Stream >= 1
	v.batches = si.State.LastSeq
	return v, nil
}

// waitDrained polls until every consumer of both streams has nothing pending
// or unacknowledged, for up to within.
func (r *Run) waitDrained(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if drained(r.Stack.JS) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func drained(js jetstream.JetStream) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range []string{fanout.PostsStream, fanout.DeliveriesStream} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return false
		}
		l := st.ListConsumers(ctx)
		n := 0
		for ci := range l.Info() {
			n++
			if ci.NumPending != 0 || ci.NumAckPending != 0 {
				return false
			}
		}
		if l.Err() != nil || n == 0 {
			return false
		}
	}
	return true
}

// waitQuiet waits until no message of the post has arrived for quiet (the
// last acknowledged batch was routed before its ping was answered, so this
// is only for stragglers), for up to within.
func (r *Run) waitQuiet(postID string, quiet, within time.Duration) {
	deadline := time.Now().Add(within)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		if n := r.Sink.Total(postID); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamFollows adds a late follower through the API's admin PUT every
// 20 ms until ctx ends.
func streamFollows(ctx context.Context, s *stack.Stack, ok, failed *atomic.Int64) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		jid := fmt.Sprintf("late%d@%s", i, SinkDomain)
		if _, err := s.Call("PUT", "/v1/users/"+Author+"/followers/"+url.PathEscape(jid), s.AdminToken, nil, nil); err != nil {
			failed.Add(1)
			continue
		}
		ok.Add(1)
	}
}

// churnPresence sends, every 5 ms, an available or unavailable presence
// from a random original follower to the gateway's domain, through the
// sink's stream. None of them granted the gateway their presence, so an
// unavailable one leaves the follower "unknown", still deliverable: the
// churn exercises the presence path during the fanout without changing who
// must get the post.
func churnPresence(ctx context.Context, sink *Sink, to string, n int, sent *atomic.Int64) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		k := (i * 7919) % n
		typ := ""
		if i%2 == 1 {
			typ = ` type="unavailable"`
		}
		if sink.Send(fmt.Sprintf(`<presence from="f%d@%s/chaos" to="%s"%s/>`, k, SinkDomain, to, typ)) {
			sent.Add(1)
		}
	}
}
