package httpapi

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus collectors.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	published   prometheus.Counter
	publish     *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	imported    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_httpapi_requests_total",
			Help: "HTTP requests answered, by route pattern and status class.",
		}, []string{"route", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "starling_httpapi_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "starling_httpapi_posts_published_total",
			Help: "Posts JetStream acknowledged as new (retries of a stored post are not counted).",
		}),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "starling_httpapi_publish_duration_seconds",
			Help:    "Time JetStream took to acknowledge a post or retraction, by kind and result (ok, duplicate, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"kind", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_httpapi_rate_limited_total",
			Help: "Requests refused with 429, by the limit that refused them (ip, token).",
		}, []string{"limit"}),
		imported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "starling_httpapi_followers_imported_lines_total",
			Help: "Lines of follower imports, by outcome (imported, already, invalid).",
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.published, m.publish, m.rateLimited, m.imported} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(route string, status int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status/100)+"xx").Inc()
	m.duration.WithLabelValues(route).Observe(took.Seconds())
}
