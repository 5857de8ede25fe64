package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestUpdateUser(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	bob := e.createUser(t, "bob")
	patch := func(user, body string, h map[string]string) request {
		return request{method: http.MethodPatch, path: "/v1/users/" + user, body: body, header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"no token", patch("alice", `{"bio":"x"}`, nil), 401, typeBlank, "bearer token"},
		{"bad token", patch("alice", `{"bio":"x"}`, bearer("stl_nope")), 401, typeBlank, "not valid"},
		{"admin is not the owner", patch("alice", `{"bio":"x"}`, bearer(testAdminToken)), 401, typeBlank, "not valid"},
		{"another user", patch("alice", `{"bio":"x"}`, bearer(bob)), 403, typeBlank, "only the owner"},
		{"unknown user", patch("carol", `{"bio":"x"}`, bearer(bob)), 403, typeBlank, "only the owner"},
		{"malformed", patch("alice", `{"bio":`, bearer(alice)), 400, typeInvalidJSON, "ends inside"},
		{"unknown member", patch("alice", `{"username":"eve"}`, bearer(alice)), 400, typeInvalidJSON, `unknown member "username"`},
		{"too large", patch("alice", `{"bio":"`+strings.Repeat("b", 70<<10)+`"}`, bearer(alice)), 413, typeBlank, "65536 bytes"},
		{"bio too long", patch("alice", `{"bio":"`+strings.Repeat("é", 501)+`"}`, bearer(alice)), 422, typeInvalidBio, "501 characters; the limit is 500"},
		{"bio control char", patch("alice", `{"bio":"a\u0000"}`, bearer(alice)), 422, typeInvalidBio, "bio contains U+0000 at character 2"},
		{"display name too long", patch("alice", `{"display_name":"`+strings.Repeat("n", 65)+`"}`, bearer(alice)), 422, typeInvalidName, "65 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}
	t.Run("ok", func(t *testing.T) {
		rec := e.do(t, patch("alice", `{"display_name":"Alice A.","bio":"I post."}`, bearer(alice)))
		var got profileResponse
		decode(t, rec, &got)
		if rec.Code != http.StatusOK || got.DisplayName != "Alice A." || got.Bio != "I post." || got.JID != "alice@"+testDomain {
			t.Fatalf("%d %+v", rec.Code, got)
		}
		// An absent member is left alone.
		rec = e.do(t, patch("alice", `{"bio":""}`, bearer(alice)))
		decode(t, rec, &got)
		if got.DisplayName != "Alice A." || got.Bio != "" {
			t.Fatalf("after clearing the bio: %+v", got)
		}
		// New posts carry the new display name.
		pub := e.pub(t)
		id := acceptedID(t, e.post(t, alice, "", "hello"))
		if p := pub.stored()[id]; p.AuthorName != "Alice A." {
			t.Fatalf("AuthorName = %q", p.AuthorName)
		}
	})
}

// pub returns the fake publisher behind e.
func (e *apiEnv) pub(t testing.TB) *fakePublisher {
	t.Helper()
	if e.fake == nil {
		t.Fatal("no fake publisher")
	}
	return e.fake
}

func TestRotateToken(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	bob := e.createUser(t, "bob")
	rotate := func(user string, h map[string]string) request {
		return request{method: http.MethodPost, path: "/v1/users/" + user + "/token", header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		detail string
	}{
		{"no token", rotate("alice", nil), 401, "bearer token"},
		{"bad token", rotate("alice", bearer("stl_nope")), 401, "not valid"},
		{"another user", rotate("alice", bearer(bob)), 403, "only the owner or the admin"},
		{"admin, unknown user", rotate("carol", bearer(testAdminToken)), 404, `no user "carol"`},
		{"admin, impossible name", rotate("Carol", bearer(testAdminToken)), 404, `no user "Carol"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, typeBlank, tc.detail)
		})
	}
	next := func(rec *responseRecorder) string {
		t.Helper()
		if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("rotate: %d %s", rec.Code, rec.Body)
		}
		var tok tokenResponse
		decode(t, rec, &tok)
		return tok.Token
	}
	byOwner := next(e.do(t, rotate("alice", bearer(alice))))
	wantProblem(t, e.post(t, alice, "", "old token"), 401, typeBlank, "not valid")
	acceptedID(t, e.post(t, byOwner, "", "new token"))
	byAdmin := next(e.do(t, rotate("alice", bearer(testAdminToken))))
	wantProblem(t, e.post(t, byOwner, "", "old token"), 401, typeBlank, "not valid")
	acceptedID(t, e.post(t, byAdmin, "", "newest token"))
	if strings.Contains(e.logs.String(), byAdmin) {
		t.Fatal("a token reached the log")
	}
}

func TestDeleteUser(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	bob := e.createUser(t, "bob")
	id := acceptedID(t, e.post(t, alice, "", "hello"))
	if _, err := e.store.Follow(context.Background(), "alice", "juliet@example.net"); err != nil {
		t.Fatal(err)
	}
	del := func(user string, h map[string]string) request {
		return request{method: http.MethodDelete, path: "/v1/users/" + user, header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		detail string
	}{
		{"no token", del("alice", nil), 401, "admin bearer token"},
		{"owner is not admin", del("alice", bearer(alice)), 403, "not the admin token"},
		{"another user", del("alice", bearer(bob)), 403, "not the admin token"},
		{"unknown user", del("carol", bearer(testAdminToken)), 404, `no user "carol"`},
		{"impossible name", del("a-b", bearer(testAdminToken)), 404, `no user "a-b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, typeBlank, tc.detail)
		})
	}
	if rec := e.do(t, del("alice", bearer(testAdminToken))); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/users/alice"}), 404, typeBlank, "no user")
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + id}), 404, typeBlank, "no status")
	wantProblem(t, e.post(t, alice, "", "still here?"), 401, typeBlank, "not valid")
	if f, _ := e.store.Following(context.Background(), "juliet@example.net"); len(f) != 0 {
		t.Fatalf("juliet still follows %v", f)
	}
	wantProblem(t, e.do(t, del("alice", bearer(testAdminToken))), 404, typeBlank, `no user "alice"`)
}
