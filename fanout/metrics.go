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
			Name: "starling_fanout_send_errors_total", Help: "Batches that failed to send and will be retried.",
		}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_fanout_undecodable_total", Help: "Messages dropped because they do not decode.",
		}),
	}
	reg.MustRegister(m.posts, m.batches, m.delivered, m.sendErrors, m.poison)
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
