package fanout

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus metrics. A nil *Metrics records
// nothing, so tests need not build one.
type Metrics struct {
	posts      prometheus.Counter
	batches    prometheus.Counter
	delivered  prometheus.Counter
	sendErrors prometheus.Counter
	poison     prometheus.Counter
	dead       *prometheus.CounterVec
	// Deliveries given up because their post was older than MaxLag.
	stalePosts      prometheus.Counter
	staleBatches    prometheus.Counter
	staleRecipients prometheus.Counter
}

// NewMetrics registers the pipeline's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		posts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_posts_total", Help: "Posts fanned out into delivery batches.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_batches_total", Help: "Delivery batches stored in JetStream.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_deliveries_total", Help: "Messages handed to the XMPP server.",
		}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_send_errors_total", Help: "Failed attempts to send a batch (retried later, or dead-lettered after the last).",
		}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_undecodable_total", Help: "Messages dead-lettered because they do not decode.",
		}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_fanout_dead_letters_total",
			Help: "Messages moved to the DEADLETTER stream, by source stream and reason (undecodable, attempts_exhausted).",
		}, []string{"stream", "reason"}),
		stalePosts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_stale_posts_total",
			Help: "Posts older than the delivery lag limit when the fanout stage took them: recorded, not fanned out.",
		}),
		staleBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_stale_batches_total",
			Help: "Delivery batches acknowledged unsent because their post was older than the delivery lag limit.",
		}),
		staleRecipients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_stale_recipients_total",
			Help: "Messages not sent because their post was older than the delivery lag limit.",
		}),
	}
	reg.MustRegister(m.posts, m.batches, m.delivered, m.sendErrors, m.poison, m.dead,
		m.stalePosts, m.staleBatches, m.staleRecipients)
	return m
}

func (m *Metrics) fanned(batches int) {
	if m != nil {
		m.posts.Inc()
		m.batches.Add(float64(batches))
	}
}

func (m *Metrics) sent(n int) {
	if m != nil {
		m.delivered.Add(float64(n))
	}
}

func (m *Metrics) sendFailed() {
	if m != nil {
		m.sendErrors.Inc()
	}
}

func (m *Metrics) undecodable() {
	if m != nil {
		m.poison.Inc()
	}
}

func (m *Metrics) deadLettered(stream, reason string) {
	if m != nil {
		m.dead.WithLabelValues(stream, reason).Inc()
	}
}

func (m *Metrics) stalePost() {
	if m != nil {
		m.stalePosts.Inc()
	}
}

func (m *Metrics) staleBatch(recipients int) {
	if m != nil {
		m.staleBatches.Inc()
		m.staleRecipients.Add(float64(recipients))
	}
}
