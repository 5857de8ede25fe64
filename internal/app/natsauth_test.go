package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"starling.dev/starling/internal/testenv"
)

// TestNATSClusterSettings: STARLING_NATS_URL keeps its comma-separated
// servers, STARLING_NATS_REPLICAS reaches the streams (1 by default, 1 to 5),
// and STARLING_NATS_TOKEN comes from the environment only and reaches both
// processes' connections.
func TestNATSClusterSettings(t *testing.T) {
	const urls = "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222"
	base := map[string]string{"STARLING_XMPP_DOMAIN": "microblog.localhost", "STARLING_XMPP_SECRET": "s"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	gw, err := ParseGateway(nil, envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	if gw.NATSReplicas != 1 || gw.streamLimits().Replicas != 1 || gw.infraConfig().natsToken != "" {
		t.Errorf("defaults: replicas %d (limits %d), token %q", gw.NATSReplicas, gw.streamLimits().Replicas, gw.infraConfig().natsToken)
	}

	env := with("STARLING_NATS_URL", urls, "STARLING_NATS_REPLICAS", "3", "STARLING_NATS_TOKEN", "s3cret")
	gw, err = ParseGateway(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	api, err := ParseAPI(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]infraConfig{"gateway": gw.infraConfig(), "api": api.infraConfig()} {
		if c.natsURL != urls || c.natsToken != "s3cret" || c.embedded {
			t.Errorf("%s: url %q, token %q, embedded %v", name, c.natsURL, c.natsToken, c.embedded)
		}
	}
	if gw.streamLimits().Replicas != 3 || api.streamLimits().Replicas != 3 {
		t.Errorf("replicas: gateway %d, api %d, want 3", gw.streamLimits().Replicas, api.streamLimits().Replicas)
	}
	if a, err := ParseAPI([]string{"-nats-replicas=5"}, envOf(base)); err != nil || a.streamLimits().Replicas != 5 {
		t.Errorf("-nats-replicas=5: %d, %v", a.streamLimits().Replicas, err)
	}

	// A secret is never a flag.
	if _, err := ParseGateway([]string{"-nats-token=s3cret"}, envOf(base)); err == nil {
		t.Error("the gateway took the NATS token as a flag")
	}
	if _, err := ParseAPI([]string{"-nats-token=s3cret"}, envOf(base)); err == nil {
		t.Error("the API took the NATS token as a flag")
	}
	for _, bad := range []string{"0", "6", "-1", "three"} {
		if _, err := ParseGateway(nil, envOf(with("STARLING_NATS_REPLICAS", bad))); err == nil {
			t.Errorf("STARLING_NATS_REPLICAS=%s accepted", bad)
		} else if strings.Count(err.Error(), "replicas") > 1 {
			t.Errorf("STARLING_NATS_REPLICAS=%s reported twice: %v", bad, err)
		}
	}
}

// TestEmbeddedNATSRequiresToken: with STARLING_NATS_TOKEN the gateway's
// embedded server refuses a client without it (or with another), while the
// gateway and the API, configured with it, connect and use JetStream; the
// API's URL lists a dead server first, as a cluster's list may.
func TestEmbeddedNATSRequiresToken(t *testing.T) {
	const token = "embedded-s3cret"
	log := slog.New(slog.DiscardHandler)
	gwEnv := map[string]string{
		"STARLING_XMPP_DOMAIN":        "microblog.localhost",
		"STARLING_XMPP_SECRET":        "secret",
		"STARLING_REDIS_URL":          "redis://" + testenv.Addr(testenv.FreePort(t)) + "/0", // never dialled here
		"STARLING_EMBEDDED_NATS_ADDR": testenv.Addr(testenv.FreePort(t)),
		"STARLING_DATA_DIR":           t.TempDir(),
		"STARLING_NATS_TOKEN":         token,
	}
	gwCfg, err := ParseGateway(nil, envOf(gwEnv))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := openInfra(gwCfg.infraConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.close()
	if gw.ns == nil {
		t.Fatal("no embedded server without a NATS URL")
	}
	useJetStream(t, "gateway", gw)

	url := gw.natsURL
	for name, opts := range map[string][]nats.Option{
		"no token":      nil,
		"another token": {nats.Token("guess")},
	} {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: the embedded server accepted the connection", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}

	apiEnv := map[string]string{
		"STARLING_XMPP_DOMAIN": "microblog.localhost",
		"STARLING_REDIS_URL":   gwEnv["STARLING_REDIS_URL"],
		"STARLING_NATS_URL":    "nats://" + testenv.Addr(testenv.FreePort(t)) + ", " + url,
	}
	noToken, err := ParseAPI(nil, envOf(apiEnv))
	if err != nil {
		t.Fatal(err)
	}
	refused, err := openInfra(noToken.infraConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	// Connect tried every server before returning: refused by the live one,
	// the connection is still reconnecting.
	if refused.nc.IsConnected() {
		t.Error("the API without the token is connected")
	}
	refused.close()

	apiEnv["STARLING_NATS_TOKEN"] = token
	apiCfg, err := ParseAPI(nil, envOf(apiEnv))
	if err != nil {
		t.Fatal(err)
	}
	api, err := openInfra(apiCfg.infraConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer api.close()
	useJetStream(t, "api", api)
}

// useJetStream checks that in's connection is up and authorised to use
// JetStream.
func useJetStream(t *testing.T, who string, in *infra) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, in.nc.IsConnected, "%s: not connected to NATS (%s)", who, in.nc.Status())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := in.js.AccountInfo(ctx); err != nil {
		t.Fatalf("%s: JetStream: %v", who, err)
	}
}
