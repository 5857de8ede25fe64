package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"
)

func TestJIDRoutes(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	bob := e.createUser(t, "bob")
	admin := bearer(testAdminToken)
	add := func(user, body string, h map[string]string) request {
		return request{method: http.MethodPost, path: "/v1/users/" + user + "/jids", body: body, header: h}
	}
	list := func(user string, h map[string]string) request {
		return request{method: http.MethodGet, path: "/v1/users/" + user + "/jids", header: h}
	}
	del := func(user, jid string, h map[string]string) request {
		return request{method: http.MethodDelete, path: "/v1/users/" + user + "/jids/" + jid, header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"add: no token", add("alice", `{"jid":"a@example.net"}`, nil), 401, typeBlank, "user's bearer token"},
		{"add: another user", add("alice", `{"jid":"a@example.net"}`, bearer(bob)), 403, typeBlank, "only the owner"},
		{"add: admin", add("alice", `{"jid":"a@example.net"}`, admin), 401, typeBlank, "not valid"},
		{"add: malformed", add("alice", `{"jid":`, bearer(alice)), 400, typeInvalidJSON, "ends inside"},
		{"add: unknown member", add("alice", `{"jid":"a@example.net","x":1}`, bearer(alice)), 400, typeInvalidJSON, "unknown member"},
		{"add: no jid", add("alice", `{}`, bearer(alice)), 422, typeInvalidJID, "not a valid JID"},
		{"add: no localpart", add("alice", `{"jid":"example.net"}`, bearer(alice)), 422, typeInvalidJID, "needs a localpart"},
		{"add: own domain", add("alice", `{"jid":"x@`+testDomain+`"}`, bearer(alice)), 422, typeInvalidJID, "own domain"},
		{"list: no token", list("alice", nil), 401, typeBlank, "bearer token"},
		{"list: another user", list("alice", bearer(bob)), 403, typeBlank, "only the owner or the admin"},
		{"list: unknown user", list("carol", admin), 404, typeBlank, `no user "carol"`},
		{"delete: another user", del("alice", "a@example.net", bearer(bob)), 403, typeBlank, "only the owner or the admin"},
		{"delete: invalid", del("alice", "@example.net", bearer(alice)), 422, typeInvalidJID, "not a valid JID"},
		{"delete: unknown user", del("carol", "a@example.net", admin), 404, typeBlank, `no user "carol"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}

	// A code for a full JID links its bare JID.
	rec := e.do(t, add("alice", `{"jid":"Juliet@Example.NET/phone"}`, bearer(alice)))
	if rec.Code != http.StatusCreated || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("add: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	var c jidCode
	decode(t, rec, &c)
	expires, err := time.Parse(time.RFC3339Nano, c.ExpiresAt)
	if c.JID != "juliet@example.net" || !regexp.MustCompile(`^[2-9A-HJ-NP-Z]{8}$`).MatchString(c.Code) || err != nil || !expires.Equal(testClock.Add(10*time.Minute)) {
		t.Fatalf("code %+v (%v)", c, err)
	}
	var l jidList
	for _, h := range []map[string]string{bearer(alice), admin} {
		l = jidList{}
		decode(t, e.do(t, list("alice", h)), &l)
		if len(l.JIDs) != 1 || l.JIDs[0] != (linkedJID{JID: "juliet@example.net", ExpiresAt: c.ExpiresAt}) {
			t.Fatalf("list: %+v", l)
		}
	}
	// Verified (as the gateway does it), it is listed so and cannot be
	// asked for again.
	if _, _, err := e.store.VerifyJID(context.Background(), "juliet@example.net", c.Code, testClock); err != nil {
		t.Fatal(err)
	}
	l = jidList{}
	decode(t, e.do(t, list("alice", bearer(alice))), &l)
	if len(l.JIDs) != 1 || !l.JIDs[0].Verified || l.JIDs[0].VerifiedAt == "" || l.JIDs[0].ExpiresAt != "" {
		t.Fatalf("list once verified: %+v", l)
	}
	wantProblem(t, e.do(t, add("alice", `{"jid":"juliet@example.net"}`, bearer(alice))), 409, typeLinkRefused, "verified already")

	// Unlinked by the owner, or the admin; again is fine.
	for _, h := range []map[string]string{bearer(alice), admin} {
		if rec := e.do(t, del("alice", url.PathEscape("juliet@example.net/phone"), h)); rec.Code != http.StatusNoContent {
			t.Fatalf("delete: %d %s", rec.Code, rec.Body)
		}
	}
	l = jidList{}
	decode(t, e.do(t, list("alice", bearer(alice))), &l)
	if len(l.JIDs) != 0 {
		t.Fatalf("list after delete: %+v", l)
	}
	if authors, _ := e.store.VerifiedAuthors(context.Background(), "juliet@example.net"); len(authors) != 0 {
		t.Fatalf("still verified for %q", authors)
	}

	// The cap.
	for i := range 10 {
		if rec := e.do(t, add("bob", `{"jid":"j`+string(rune('a'+i))+`@example.net"}`, bearer(bob))); rec.Code != http.StatusCreated {
			t.Fatalf("code %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	wantProblem(t, e.do(t, add("bob", `{"jid":"one@too.many"}`, bearer(bob))), 409, typeLinkRefused, "at most 10")
}
