package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestCreateUser(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	post := func(body string, header map[string]string) request {
		return request{method: http.MethodPost, path: "/v1/users", body: body, header: header}
	}
	admin := bearer(testAdminToken)
	alice := `{"username":"alice","display_name":"Alice"}`
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"no authorization", post(alice, nil), 401, typeBlank, "admin bearer token"},
		{"basic scheme", post(alice, map[string]string{"Authorization": "Basic YTpi"}), 401, typeBlank, "admin bearer token"},
		{"empty bearer", post(alice, map[string]string{"Authorization": "Bearer "}), 401, typeBlank, "admin bearer token"},
		{"wrong token", post(alice, bearer("not-the-admin")), 403, typeBlank, "not the admin token"},
		{"user token prefix", post(alice, bearer(testAdminToken+"x")), 403, typeBlank, "not the admin token"},
		{"malformed json", post(`{"username":`, admin), 400, typeInvalidJSON, "ends inside"},
		{"syntax error", post(`{"username" "alice"}`, admin), 400, typeInvalidJSON, "malformed JSON"},
		{"empty body", post(``, admin), 400, typeInvalidJSON, "empty"},
		{"unknown field", post(`{"username":"alice","admin":true}`, admin), 400, typeInvalidJSON, `unknown member "admin"`},
		{"trailing data", post(alice+`{}`, admin), 400, typeInvalidJSON, "after the JSON value"},
		{"wrong type", post(`{"username":7}`, admin), 400, typeInvalidJSON, `"username" must be a JSON string`},
		{"not an object", post(`["alice"]`, admin), 400, typeInvalidJSON, "must be a JSON object"},
		{"too large", post(`{"username":"`+strings.Repeat("a", 70<<10)+`"}`, admin), 413, typeBlank, "65536 bytes"},
		{"uppercase", post(`{"username":"Alice"}`, admin), 422, typeInvalidUser, "a-z"},
		{"hyphen", post(`{"username":"al-ice"}`, admin), 422, typeInvalidUser, "a-z"},
		{"empty username", post(`{"username":""}`, admin), 422, typeInvalidUser, "1 to 32"},
		{"33 characters", post(`{"username":"`+strings.Repeat("a", 33)+`"}`, admin), 422, typeInvalidUser, "1 to 32"},
		{"non-ascii", post(`{"username":"élise"}`, admin), 422, typeInvalidUser, "a-z"},
		{"control char in display name", post(`{"username":"bob","display_name":"Bo\u0007b"}`, admin), 422, typeInvalidName, "display_name contains U+0007 at character 3"},
		{"display name too long", post(`{"username":"bob","display_name":"`+strings.Repeat("é", 65)+`"}`, admin), 422, typeInvalidName, "65 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}
	t.Run("created", func(t *testing.T) { checkCreated(t, e, post(alice, admin)) })
	t.Run("taken", func(t *testing.T) {
		wantProblem(t, e.do(t, post(`{"username":"alice","display_name":"Other"}`, admin)), 409, typeUserExists, `"alice" is taken`)
	})
	t.Run("32 characters", func(t *testing.T) {
		rec := e.do(t, post(`{"username":"`+strings.Repeat("z", 32)+`"}`, admin))
		if rec.Code != http.StatusCreated {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// checkCreated creates alice and checks the answer and what was stored.
func checkCreated(t *testing.T, e *apiEnv, req request) {
	rec := e.do(t, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var u createdUser
	decode(t, rec, &u)
	if u.Username != "alice" || u.DisplayName != "Alice" || u.JID != "alice@"+testDomain {
		t.Fatalf("created %+v", u)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(u.Token, "stl_"))
	if !strings.HasPrefix(u.Token, "stl_") || err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not stl_ + base64url(32 bytes): %v", u.Token, err)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/users/alice" {
		t.Fatalf("Location = %q", loc)
	}
	// Only the hash is stored, and it leads back to alice.
	if user, _, err := e.store.UserByTokenHash(context.Background(), hashToken(u.Token)); err != nil || user != "alice" {
		t.Fatalf("UserByTokenHash = %q, %v", user, err)
	}
	if _, _, err := e.store.UserByTokenHash(context.Background(), u.Token); err == nil {
		t.Fatal("the raw token is stored as a key")
	}
}

func TestAdminDisabled(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) { c.AdminToken = "" })
	for _, h := range []map[string]string{nil, bearer(""), bearer(testAdminToken)} {
		rec := e.do(t, request{method: http.MethodPost, path: "/v1/users", body: `{"username":"alice"}`, header: h})
		wantProblem(t, rec, 403, typeBlank, "admin endpoints disabled")
	}
}

func TestTokensDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := newToken()
		if seen[tok] || len(tok) != len("stl_")+43 {
			t.Fatalf("token %q repeated or of the wrong length", tok)
		}
		seen[tok] = true
	}
}

func TestGetUser(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	token := e.createUser(t, "alice")
	if _, err := e.store.Follow(context.Background(), "alice", "juliet@example.net"); err != nil {
		t.Fatal(err)
	}
	if rec := e.post(t, token, "", "hello"); rec.Code != http.StatusAccepted {
		t.Fatalf("post: %d %s", rec.Code, rec.Body)
	}
	rec := e.do(t, request{method: http.MethodGet, path: "/v1/users/alice"})
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var got profileResponse
	decode(t, rec, &got)
	want := profileResponse{Username: "alice", DisplayName: "Test User", JID: "alice@" + testDomain, Followers: 1, Posts: 1}
	if got != want {
		t.Fatalf("profile = %+v, want %+v", got, want)
	}
	if strings.Contains(rec.Body.String(), "token") {
		t.Fatalf("profile shows a token: %s", rec.Body)
	}
	for _, name := range []string{"bob", "Alice", "a%2Fb", strings.Repeat("a", 33)} {
		rec := e.do(t, request{method: http.MethodGet, path: "/v1/users/" + name})
		wantProblem(t, rec, 404, typeBlank, "no user")
	}
}

func TestStoreFailureIs500WithoutDetail(t *testing.T) {
	e := newAPI(t, deadRedisStore(t), &fakePublisher{}, nil)
	reqs := []request{
		{method: http.MethodGet, path: "/v1/users/alice"},
		{method: http.MethodPost, path: "/v1/users", body: `{"username":"alice"}`, header: bearer(testAdminToken)},
		{method: http.MethodPost, path: "/v1/statuses", body: `{"text":"hi"}`, header: bearer("stl_x")},
		{method: http.MethodGet, path: "/v1/statuses/01JAAAAAAAAAAAAAAAAAAAAAAA"},
		{method: http.MethodGet, path: "/v1/users/alice/statuses"},
		{method: http.MethodDelete, path: "/v1/users/alice", header: bearer(testAdminToken)},
		{method: http.MethodPost, path: "/v1/users/alice/token", header: bearer(testAdminToken)},
		{method: http.MethodGet, path: "/v1/users/alice/followers", header: bearer(testAdminToken)},
		{method: http.MethodPut, path: "/v1/users/alice/followers/juliet@example.net", header: bearer(testAdminToken)},
		{method: http.MethodPost, path: "/v1/users/alice/followers/import", body: "juliet@example.net\n", header: bearer(testAdminToken)},
	}
	for _, req := range reqs {
		t.Run(req.method+" "+req.path, func(t *testing.T) {
			rec := e.do(t, req)
			p := wantProblem(t, rec, 500, typeBlank, "logged")
			if strings.Contains(p.Detail, "127.0.0.1") || strings.Contains(p.Detail, "redis") {
				t.Fatalf("500 leaks internals: %q", p.Detail)
			}
		})
	}
	if logs := e.logs.String(); !strings.Contains(logs, "127.0.0.1") {
		t.Fatalf("the cause was not logged: %s", logs)
	}
}
