package s2s

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the server-to-server metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	streams      *prometheus.GaugeVec
	openedC      *prometheus.CounterVec
	authFailedC  *prometheus.CounterVec
	refusedC     *prometheus.CounterVec
	unreachableC prometheus.Counter
	droppedC     prometheus.Counter
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "starling_s2s_streams", Help: "Server-to-server streams open now, by direction (in: remote servers' streams to us; out: ours to them).",
		}, []string{"direction"}),
		openedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_s2s_streams_opened_total", Help: "Server-to-server streams opened, by direction.",
		}, []string{"direction"}),
		authFailedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_s2s_dialback_failures_total", Help: "Dialback keys refused: ours by a remote server (out), or a remote server's by its authoritative server (in).",
		}, []string{"direction"}),
		refusedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_s2s_refused_total", Help: "Streams refused, by reason (plaintext: the peer would not use TLS; limit: too many inbound streams).",
		}, []string{"reason"}),
		unreachableC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_s2s_unreachable_total", Help: "Outbound streams that could not be opened or authenticated (the domain then backs off).",
		}),
		droppedC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_s2s_dropped_total", Help: "Queued stanzas dropped: their domain was unreachable or its queue full.",
		}),
	}
	reg.MustRegister(m.streams, m.openedC, m.authFailedC, m.refusedC, m.unreachableC, m.droppedC)
	return m
}

func (m *Metrics) opened(direction string) {
	if m != nil {
		m.openedC.WithLabelValues(direction).Inc()
		m.streams.WithLabelValues(direction).Inc()
	}
}

func (m *Metrics) closed(direction string) {
	if m != nil {
		m.streams.WithLabelValues(direction).Dec()
	}
}

func (m *Metrics) authFailed(direction string) {
	if m != nil {
		m.authFailedC.WithLabelValues(direction).Inc()
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.refusedC.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) unreachable() {
	if m != nil {
		m.unreachableC.Inc()
	}
}

func (m *Metrics) dropped() { m.droppedN(1) }

func (m *Metrics) droppedN(n int) {
	if m != nil {
		m.droppedC.Add(float64(n))
	}
}
