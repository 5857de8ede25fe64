package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestJIDs(t *testing.T) {
	srv, store := apiServer(t)
	var created struct{ Token string }
	r := ctlRun(t, srv, "", "users", "create", "alice")
	if json.Unmarshal([]byte(r.stdout), &created) != nil {
		t.Fatalf("users create: %+v", r)
	}
	r = ctlRun(t, srv, "", "jids", "add", "alice", "juliet@example.net/balcony", "--token", created.Token)
	var code struct {
		JID       string `json:"jid"`
		Code      string `json:"code"`
		ExpiresAt string `json:"expires_at"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &code) != nil || code.JID != "juliet@example.net" || len(code.Code) != 8 {
		t.Fatalf("jids add: %+v", r)
	}
	if r := ctlRun(t, srv, "", "jids", "add", "alice", "romeo@example.net"); r.code != exitFailed || !strings.Contains(r.stderr, "401") {
		t.Fatalf("jids add with the admin token: %+v", r)
	}
	if r := ctlRun(t, srv, "", "jids", "list", "alice"); r.code != exitOK || r.stdout != "juliet@example.net\tcode\t"+code.ExpiresAt+"\n" {
		t.Fatalf("jids list: %+v", r)
	}
	if _, _, err := store.VerifyJID(context.Background(), "juliet@example.net", code.Code, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := ctlRun(t, srv, "", "--token", created.Token, "jids", "list", "alice"); r.code != exitOK || !strings.HasPrefix(r.stdout, "juliet@example.net\tverified\t") {
		t.Fatalf("jids list (owner) once verified: %+v", r)
	}
	if r := ctlRun(t, srv, "", "jids", "rm", "alice", "juliet@example.net"); r.code != exitOK || r.stdout != "" {
		t.Fatalf("jids rm: %+v", r)
	}
	if r := ctlRun(t, srv, "", "jids", "list", "alice"); r.code != exitOK || r.stdout != "" {
		t.Fatalf("jids list after rm: %+v", r)
	}
	for _, args := range [][]string{{"jids"}, {"jids", "add", "alice"}, {"jids", "list"}, {"jids", "rm", "alice"}, {"jids", "frob", "alice"}} {
		if r := ctlRun(t, srv, "", args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
}
