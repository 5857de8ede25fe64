package xmpp

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the component's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	connects  prometheus.Counter
	connected prometheus.Gauge
	commands  prometheus.Counter
	limited   prometheus.Counter
	bounces   prometheus.Counter
	busy      prometheus.Counter
}

// NewMetrics registers the component's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_connects_total", Help: "Component connections negotiated with the XMPP server.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "starling_xmpp_connected", Help: "1 while the component connection is up.",
		}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_commands_total", Help: "IM command messages answered.",
		}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_commands_limited_total", Help: "IM commands refused by the per-JID rate limit.",
		}),
		bounces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_bounces_total", Help: "Deliveries the followers' servers sent back as errors.",
		}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_handler_busy_total", Help: "Stanzas refused at once because their sender's handler queue was full (a slow store).",
		}),
	}
	reg.MustRegister(m.connects, m.connected, m.commands, m.limited, m.bounces, m.busy)
	return m
}

func (m *Metrics) up(on bool) {
	if m == nil {
		return
	}
	if on {
		m.connects.Inc()
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

func (m *Metrics) command() {
	if m != nil {
		m.commands.Inc()
	}
}

func (m *Metrics) limitedCommand() {
	if m != nil {
		m.limited.Inc()
	}
}

func (m *Metrics) bounce() {
	if m != nil {
		m.bounces.Inc()
	}
}

func (m *Metrics) busyStanza() {
	if m != nil {
		m.busy.Inc()
	}
}
