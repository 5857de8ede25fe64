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
	// forwards and relays count ping answers passed to other replicas
	// and the forwarded answers that settled one of ours.
	forwards prometheus.Counter
	relays   prometheus.Counter
}

// NewMetrics registers the component's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_connects_total", Help: "Component connections negotiated with the XMPP server.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "starling_xmpp_connected", Help: "Component connections up now (0 while none is).",
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
		forwards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_ping_answers_forwarded_total", Help: "Answers to another replica's delivery pings that reached this gateway and were passed on.",
		}),
		relays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_xmpp_ping_answers_relayed_total", Help: "Answers to this gateway's delivery pings that reached another replica and were passed here.",
		}),
	}
	reg.MustRegister(m.connects, m.connected, m.commands, m.limited, m.bounces, m.busy, m.forwards, m.relays)
	return m
}

// up counts a new connection; live is how many are up now.
func (m *Metrics) up(live int) {
	if m != nil {
		m.connects.Inc()
		m.connected.Set(float64(live))
	}
}

// down records that a connection ended; live is how many are left.
func (m *Metrics) down(live int) {
	if m != nil {
		m.connected.Set(float64(live))
	}
}

func (m *Metrics) forwarded() {
	if m != nil {
		m.forwards.Inc()
	}
}

func (m *Metrics) relayed() {
	if m != nil {
		m.relays.Inc()
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
