package xmpp

import (
	"log/slog"
	"sync"

	"mellium.im/xmpp/jid"

	"starling.dev/starling/fanout"
)

// Component is the XEP-0114 connection to the XMPP server. Run keeps it
// connected (conn.go); DeliverBatch writes the fanout's batches through it
// (deliver.go); the handlers answer what followers send. DeliverBatch,
// WaitReady and Connected are safe for concurrent use.
type Component struct {
	cfg     Config
	domain  jid.JID
	store   Store
	im      *IM
	limits  *limiter
	metrics *Metrics
	log     *slog.Logger
	pings   *pings
	pacer   *pacer
	// work queues what the handlers leave to the workers (work.go).
	work *workers
	// pingHead is the delivery ping up to its id, rendered once.
	pingHead []byte
	// pingTo is Config.PingTo parsed: only its answers confirm a chunk.
	pingTo jid.JID

	relay Relay // nil: answers that are not ours are dropped

	// fed, when set, makes the component the XMPP server of its domain
	// (s2s mode, s2s.go): it federates through fed instead of connecting
	// to a server as a component.
	fed Federation
	// domainPacers pace deliveries per remote server in s2s mode.
	domainPacers pacers

	mu    sync.Mutex // guards live, turn, ready and gone
	live  []*link
	turn  int           // the last live link current chose
	ready chan struct{} // closed while live is not empty
	gone  chan struct{} // closed when live last became empty
}

var _ fanout.StanzaSender = (*Component)(nil)

// New returns a component; call Run to connect it. metrics may be nil.
func New(store Store, metrics *Metrics, log *slog.Logger, cfg Config, opts ...Option) (*Component, error) {
	var bare Component // to learn the mode before validating
	for _, opt := range opts {
		opt(&bare)
	}
	if err := cfg.validate(bare.fed != nil); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Component{
		cfg:      cfg,
		domain:   jid.MustParse(cfg.Domain),
		store:    store,
		im:       newIM(cfg.Domain, store, cfg.MaxFollowing, log),
		limits:   newLimiter(cfg.CommandRate, cfg.CommandBurst),
		metrics:  metrics,
		log:      log,
		pings:    newPings(),
		pacer:    newPacer(cfg.QueueDelay, minWindow, maxWindow),
		work:     newWorkers(workShards, workQueue),
		ready:    make(chan struct{}),
		pingHead: renderPingHead(cfg.Domain, cfg.PingTo),
		pingTo:   jid.MustParse(cfg.PingTo),
		gone:     closed(),
	}
	for _, opt := range opts {
		opt(c)
	}
	c.domainPacers.target = cfg.QueueDelay
	return c, nil
}

// closed returns a closed channel.
func closed() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
