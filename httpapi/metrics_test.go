package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counter sums the samples of a counter family whose labels include want.
func (e *apiEnv) counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, want) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

func TestMetrics(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	e.do(t, request{method: http.MethodGet, path: "/healthz"})
	e.do(t, request{method: http.MethodGet, path: "/v1/users/nobody"})
	e.do(t, request{method: http.MethodGet, path: "/v1/users/nobody2"})
	e.do(t, request{method: http.MethodGet, path: "/no/such/path"})
	cases := []struct {
		route, class string
		want         float64
	}{
		{"/healthz", "2xx", 1},
		{"/v1/users/{username}", "4xx", 2},
		{unmatchedRoute, "4xx", 1},
	}
	for _, c := range cases {
		got := e.counter(t, "starling_httpapi_requests_total", map[string]string{"route": c.route, "code_class": c.class})
		if got != c.want {
			t.Errorf("requests{route=%q,code_class=%q} = %v, want %v", c.route, c.class, got, c.want)
		}
	}
	rec := e.do(t, request{method: http.MethodGet, path: "/metrics"})
	body := rec.Body.String()
	for _, name := range []string{"starling_httpapi_requests_total", "starling_httpapi_request_duration_seconds_bucket", "starling_httpapi_posts_published_total"} {
		if rec.Code != http.StatusOK || !strings.Contains(body, name) {
			t.Fatalf("/metrics (%d) lacks %s:\n%s", rec.Code, name, body)
		}
	}
	assertNotInDefaultRegistry(t)
}

func assertNotInDefaultRegistry(t *testing.T) {
	t.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "starling_httpapi_") {
			t.Fatalf("%s is in the default registry", f.GetName())
		}
	}
}

func TestNoMetricsRouteWithoutGatherer(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) { c.Gatherer = nil })
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/metrics"}), 404, typeBlank, "/metrics")
}

func TestMetricsRegisteredOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Domain: testDomain, Registerer: reg}
	if _, err := New(deadRedisStore(t), deadRedisStore(t), &fakePublisher{}, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(deadRedisStore(t), deadRedisStore(t), &fakePublisher{}, cfg); err == nil {
		t.Fatal("a second handler registered the same metrics without error")
	}
}

// wantCounter checks the sum of a counter family's samples with labels.
func (e *apiEnv) wantCounter(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := e.counter(t, name, labels); got != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}
