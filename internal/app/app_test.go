package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/accounts"
	"starling.dev/starling/httpapi"
	"starling.dev/starling/internal/testenv"
)

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseAPIDefaults(t *testing.T) {
	c, err := ParseAPI(nil, envOf(map[string]string{"STARLING_XMPP_DOMAIN": "microblog.localhost"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RateIP != httpapi.DefaultIPRate || c.RateIPBurst != httpapi.DefaultIPBurst ||
		c.RateToken != httpapi.DefaultTokenRate || c.RateTokenBurst != httpapi.DefaultTokenBurst {
		t.Errorf("rate limits %v/%d %v/%d are not httpapi's defaults", c.RateIP, c.RateIPBurst, c.RateToken, c.RateTokenBurst)
	}
	if c.PostHistory != accounts.DefaultRecentPosts || c.MaxPostChars != starling.DefaultMaxPostChars {
		t.Errorf("post history %d, max post chars %d: not the packages' defaults", c.PostHistory, c.MaxPostChars)
	}
	off, err := ParseAPI(nil, envOf(map[string]string{
		"STARLING_XMPP_DOMAIN": "microblog.localhost", "STARLING_RATE_IP": "0", "STARLING_RATE_TOKEN": "0",
	}))
	if err != nil || off.RateIP != 0 || off.RateToken != 0 {
		t.Fatalf("rates 0 (off): %+v, %v", off, err)
	}
}

// run starts f in a goroutine owned by the test: the test cancels it and
// waits for it to return, failing if it takes longer than within.
func run(t *testing.T, within time.Duration, f func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(within):
			err = fmt.Errorf("did not return within %s of cancel", within)
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// listening returns a hook that reports the address it is called with.
func listening() (hook func(string), addr <-chan string) {
	ch := make(chan string, 1)
	return func(a string) { ch <- a }, ch
}

func waitAddr(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("the listener never came up")
		return ""
	}
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func gatewayConfig(t *testing.T, redisURL string) Gateway {
	t.Helper()
	cfg, err := ParseGateway(nil, envOf(map[string]string{
		"STARLING_XMPP_DOMAIN":        "microblog.localhost",
		"STARLING_XMPP_SECRET":        "secret",
		"STARLING_REDIS_URL":          redisURL,
		"STARLING_REDIS_PREFIX":       testenv.Prefix(t),
		"STARLING_METRICS_ADDR":       "127.0.0.1:0",
		"STARLING_EMBEDDED_NATS_ADDR": testenv.Addr(testenv.FreePort(t)),
		"STARLING_DATA_DIR":           t.TempDir(),
		// Nobody listens here: the component keeps reconnecting.
		"STARLING_XMPP_ADDR": testenv.Addr(testenv.FreePort(t)),
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestGatewayProbesAndShutdown runs the gateway with embedded NATS and no
// XMPP server: it is ready (the link does not gate readiness), and once
// cancelled it returns and has stopped its embedded NATS server.
func TestGatewayProbesAndShutdown(t *testing.T) {
	cfg := gatewayConfig(t, testenv.StartRedis(t).URL)
	hook, addrs := listening()
	log := slog.New(slog.DiscardHandler)
	stop := run(t, 20*time.Second, func(ctx context.Context) error {
		return RunGateway(ctx, cfg, log, GatewayHooks{MetricsListening: hook})
	})
	base := "http://" + waitAddr(t, addrs)

	testenv.Eventually(t, 20*time.Second, func() bool {
		code, body := get(t, base+"/readyz")
		return code == http.StatusOK && body["status"] == "ready" && body["xmpp_connected"] == false
	}, "gateway /readyz never answered 200 ready with xmpp_connected false")
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/healthz: %d %v", code, body)
	}
	if code, _ := get(t, base+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics: %d", code)
	}

	if err := stop(); err != nil {
		t.Fatalf("RunGateway: %v", err)
	}
	if c, err := net.DialTimeout("tcp", cfg.EmbeddedNATSAddr, time.Second); err == nil {
		c.Close()
		t.Error("the embedded NATS server still listens after RunGateway returned")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Error("the ops listener still accepts after RunGateway returned")
	}
}

// TestGatewayNotReadyNamesCheck points the gateway at a Redis nobody runs:
// /readyz answers 503 naming the failing check.
func TestGatewayNotReadyNamesCheck(t *testing.T) {
	cfg := gatewayConfig(t, "redis://"+testenv.Addr(testenv.FreePort(t))+"/0")
	hook, addrs := listening()
	stop := run(t, 20*time.Second, func(ctx context.Context) error {
		return RunGateway(ctx, cfg, slog.New(slog.DiscardHandler), GatewayHooks{MetricsListening: hook})
	})
	base := "http://" + waitAddr(t, addrs)
	testenv.Eventually(t, 20*time.Second, func() bool {
		code, body := get(t, base+"/readyz")
		detail, _ := body["detail"].(string)
		return code == http.StatusServiceUnavailable && strings.Contains(detail, "redis: ")
	}, "gateway /readyz never answered 503 naming redis")
	if err := stop(); err != nil {
		t.Fatalf("RunGateway: %v", err)
	}
}

// TestRunAPIShutdown runs the API against real NATS and Redis, with the
// rate limits off, and stops it.
func TestRunAPIShutdown(t *testing.T) {
	nats := testenv.StartNATS(t)
	cfg, err := ParseAPI(nil, envOf(map[string]string{
		"STARLING_XMPP_DOMAIN":  "microblog.localhost",
		"STARLING_REDIS_URL":    testenv.StartRedis(t).URL,
		"STARLING_REDIS_PREFIX": testenv.Prefix(t),
		"STARLING_NATS_URL":     nats.URL,
		"STARLING_HTTP_ADDR":    "127.0.0.1:0",
		"STARLING_RATE_IP":      "0",
		"STARLING_RATE_TOKEN":   "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	hook, addrs := listening()
	stop := run(t, 20*time.Second, func(ctx context.Context) error {
		return RunAPI(ctx, cfg, slog.New(slog.DiscardHandler), APIHooks{Listening: hook})
	})
	base := "http://" + waitAddr(t, addrs)
	testenv.Eventually(t, 20*time.Second, func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	}, "api /readyz never answered 200")
	// More requests than the default burst from one address: none is
	// limited, since 0 turns the limits off.
	for i := range httpapi.DefaultIPBurst + 10 {
		if code, _ := get(t, base+"/v1/users/nobody"); code != http.StatusNotFound {
			t.Fatalf("request %d: %d, want 404", i, code)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("RunAPI: %v", err)
	}
}
