package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
	"starling.dev/starling/httpapi"
	"starling.dev/starling/internal/testenv"
)

// unrecorded is the accounts store of an API whose RecordPost fails, as
// when Redis drops between JetStream's ack and the record.
type unrecorded struct{ *accountStore }

func (unrecorded) RecordPost(context.Context, starling.Post) error {
	return errors.New("redis: connection reset by peer")
}

// TestGatewayRepairsUnrecordedPost: the API answers 202 for a post it could
// not record; the gateway's fanout stage records it, so GET and DELETE find
// it soon after.
func TestGatewayRepairsUnrecordedPost(t *testing.T) {
	ctx := context.Background()
	redis := testenv.StartRedis(t)
	n := testenv.StartNATS(t)
	js, err := jetstream.New(n.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := fanout.EnsureStreams(ctx, js, fanout.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	cfg := gatewayConfig(t, redis.URL)
	cfg.NATSURL = n.URL
	stop := run(t, 20*time.Second, func(ctx context.Context) error {
		return RunGateway(ctx, cfg, slog.New(slog.DiscardHandler), GatewayHooks{})
	})

	st, err := openStores(redis.Client(t), cfg.RedisPrefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	const token = "stl_alice"
	sum := sha256.Sum256([]byte(token))
	if err := st.CreateUser(ctx, "alice", "Alice", hex.EncodeToString(sum[:]), time.Now()); err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(unrecorded{st.accountStore}, st.graphStore, fanout.NewPostPublisher(js), httpapi.Config{
		Domain: cfg.Domain, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec
	}
	rec := call(http.MethodPost, "/v1/statuses", `{"text":"hello"}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("post: %d %s", rec.Code, rec.Body)
	}
	id := strings.TrimPrefix(rec.Header().Get("Location"), "/v1/statuses/")
	testenv.Eventually(t, 20*time.Second, func() bool {
		return call(http.MethodGet, "/v1/statuses/"+id, "").Code == http.StatusOK
	}, "the gateway never recorded the post the API could not")
	if rec := call(http.MethodDelete, "/v1/statuses/"+id, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	if prof, err := st.Profile(ctx, "alice"); err != nil || prof.Posts != 0 {
		t.Fatalf("after delete: %+v, %v", prof, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamAndLagSettings: the stream limits and the delivery lag are
// read like every setting, default to fanout's values, and 0 turns them off.
func TestStreamAndLagSettings(t *testing.T) {
	base := map[string]string{"STARLING_XMPP_DOMAIN": "microblog.localhost", "STARLING_XMPP_SECRET": "s"}
	c, err := ParseGateway(nil, envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.PostsMaxAge != fanout.DefaultPostsMaxAge || c.PostsMaxBytes != fanout.DefaultPostsMaxBytes ||
		c.DeliveriesMaxAge != fanout.DefaultDeliveriesMaxAge || c.DeliveriesMaxBytes != fanout.DefaultDeliveriesMaxBytes ||
		c.DeliveryMaxLag != fanout.DefaultMaxLag {
		t.Errorf("defaults %+v are not fanout's", c)
	}
	env := map[string]string{
		"STARLING_POSTS_MAX_AGE": "72h", "STARLING_POSTS_MAX_BYTES": "0",
		"STARLING_DELIVERIES_MAX_AGE": "0", "STARLING_DELIVERIES_MAX_BYTES": "1048576",
		"STARLING_DELIVERY_MAX_LAG": "0",
	}
	for k, v := range base {
		env[k] = v
	}
	c, err = ParseGateway(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	want := fanout.StreamLimits{PostsMaxAge: 72 * time.Hour, PostsMaxBytes: -1, DeliveriesMaxAge: -1, DeliveriesMaxBytes: 1 << 20, Replicas: 1}
	if got := c.streamLimits(); got != want {
		t.Errorf("stream limits %+v, want %+v", got, want)
	}
	if lag := c.consumerConfig().MaxLag; lag >= 0 {
		t.Errorf("delivery lag 0 gave MaxLag %s, want off (negative)", lag)
	}
	a, err := ParseAPI([]string{"-deliveries-max-age=48h"}, envOf(base))
	if err != nil || a.streamLimits().DeliveriesMaxAge != 48*time.Hour {
		t.Errorf("api flag: %+v, %v", a.streamLimits(), err)
	}
	for _, bad := range []map[string]string{
		{"STARLING_POSTS_MAX_AGE": "a week"},
		{"STARLING_DELIVERIES_MAX_BYTES": "1GiB"},
		{"STARLING_DELIVERIES_MAX_AGE": "30s"}, // shorter than the duplicate window
		{"STARLING_DELIVERY_MAX_LAG": "-1h"},
	} {
		for k, v := range base {
			bad[k] = v
		}
		if _, err := ParseGateway(nil, envOf(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
