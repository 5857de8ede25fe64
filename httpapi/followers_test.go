package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestFollowerRoutes(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	bob := e.createUser(t, "bob")
	admin := bearer(testAdminToken)
	put := func(user, jid string, h map[string]string) request {
		return request{method: http.MethodPut, path: "/v1/users/" + user + "/followers/" + jid, header: h}
	}
	del := func(user, jid string, h map[string]string) request {
		return request{method: http.MethodDelete, path: "/v1/users/" + user + "/followers/" + jid, header: h}
	}
	list := func(user, query string, h map[string]string) request {
		return request{method: http.MethodGet, path: "/v1/users/" + user + "/followers" + query, header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"put: no token", put("alice", "juliet@example.net", nil), 401, typeBlank, "admin bearer token"},
		{"put: owner is not admin", put("alice", "juliet@example.net", bearer(alice)), 403, typeBlank, "not the admin token"},
		{"put: unknown user", put("carol", "juliet@example.net", admin), 404, typeBlank, `no user "carol"`},
		{"put: no localpart", put("alice", "example.net", admin), 422, typeInvalidJID, "needs a localpart"},
		{"put: invalid", put("alice", "a@b@c", admin), 422, typeInvalidJID, "not a valid JID"},
		{"put: own domain", put("alice", "bob@"+testDomain, admin), 422, typeInvalidJID, "own domain"},
		{"delete: no token", del("alice", "juliet@example.net", nil), 401, typeBlank, "admin bearer token"},
		{"delete: owner is not admin", del("alice", "juliet@example.net", bearer(alice)), 403, typeBlank, "not the admin token"},
		{"delete: unknown user", del("carol", "juliet@example.net", admin), 404, typeBlank, `no user "carol"`},
		{"delete: invalid", del("alice", "@example.net", admin), 422, typeInvalidJID, "not a valid JID"},
		{"list: no token", list("alice", "", nil), 401, typeBlank, "bearer token"},
		{"list: bad token", list("alice", "", bearer("stl_x")), 401, typeBlank, "not valid"},
		{"list: another user", list("alice", "", bearer(bob)), 403, typeBlank, "only the owner or the admin"},
		{"list: unknown user", list("carol", "", admin), 404, typeBlank, `no user "carol"`},
		{"list: bad limit", list("alice", "?limit=1001", admin), 400, typeInvalidQuery, "from 1 to 1000"},
		{"list: bad cursor", list("alice", "?cursor=-1", admin), 400, typeInvalidQuery, "cursor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}

	putOK := func(raw, bare string, added bool) {
		t.Helper()
		rec := e.do(t, put("alice", raw, admin))
		var got followerChange
		decode(t, rec, &got)
		if rec.Code != http.StatusOK || got != (followerChange{JID: bare, Added: added}) {
			t.Fatalf("PUT %s: %d %+v", raw, rec.Code, got)
		}
	}
	putOK("juliet@example.net", "juliet@example.net", true)
	putOK("juliet@example.net", "juliet@example.net", false)
	// A full JID (its "/" escaped) is stored bare, and case-folded by PRECIS
	// as the gateway does.
	putOK("Romeo@Example.NET%2Fphone", "romeo@example.net", true)
	if f, _ := e.store.Following(context.Background(), "romeo@example.net"); !slices.Equal(f, []string{"alice"}) {
		t.Fatalf("followee index = %v", f)
	}

	var page followerPage
	decode(t, e.do(t, list("alice", "", bearer(alice))), &page)
	slices.Sort(page.Followers)
	if !slices.Equal(page.Followers, []string{"juliet@example.net", "romeo@example.net"}) || page.Next != "" {
		t.Fatalf("followers = %+v", page)
	}
	for range 2 {
		if rec := e.do(t, del("alice", "juliet@example.net", admin)); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
		}
	}
	var after followerPage
	decode(t, e.do(t, list("alice", "?limit=1", admin)), &after)
	if len(after.Followers) != 1 {
		t.Fatalf("after delete: %+v", after)
	}
}

// TestFollowerPagination pages through a set too large for one SSCAN reply.
func TestFollowerPagination(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	want := make([]string, 1500)
	for i := range want {
		want[i] = fmt.Sprintf("f%04d@example.net", i)
	}
	if _, err := e.store.AddFollowers(context.Background(), "alice", want); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	query, pages := "?limit=200", 0
	for {
		pages++
		var page followerPage
		decode(t, e.do(t, request{method: http.MethodGet, path: "/v1/users/alice/followers" + query, header: bearer(alice)}), &page)
		for _, j := range page.Followers {
			seen[j] = true
		}
		if page.Next == "" {
			break
		}
		query = "?limit=200&cursor=" + page.Next
	}
	if len(seen) != len(want) || pages < 3 {
		t.Fatalf("%d followers in %d pages", len(seen), pages)
	}
}

func TestImportFollowers(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, func(c *Config) { c.MaxImportBytes = 8 << 10 })
	alice := e.createUser(t, "alice")
	admin := map[string]string{"Authorization": "Bearer " + testAdminToken, "Content-Type": "text/plain; charset=utf-8"}
	imp := func(user, body string, h map[string]string) request {
		return request{method: http.MethodPost, path: "/v1/users/" + user + "/followers/import", body: body, header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"no token", imp("alice", "a@b.c\n", nil), 401, typeBlank, "admin bearer token"},
		{"owner is not admin", imp("alice", "a@b.c\n", bearer(alice)), 403, typeBlank, "not the admin token"},
		{"unknown user", imp("carol", "a@b.c\n", admin), 404, typeBlank, `no user "carol"`},
		{"json", imp("alice", `["a@b.c"]`, map[string]string{"Authorization": "Bearer " + testAdminToken, "Content-Type": "application/json"}), 415, typeBlank, "text/plain"},
		{"too large", imp("alice", strings.Repeat("someone@example.net\n", 600), admin), 413, typeBlank, "8192 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}

	body := strings.Join([]string{
		"# migrated from the old server",
		"juliet@example.net",
		"",
		"  romeo@example.net/phone\r",
		"not a jid@",
		"example.net",
		"nurse@" + testDomain,
		"Juliet@EXAMPLE.net",
		strings.Repeat("x", 5000) + "@example.net",
		"mercutio@example.net", // no final newline
	}, "\n")
	rec := e.do(t, imp("alice", body, admin))
	var got importResult
	decode(t, rec, &got)
	if rec.Code != http.StatusOK || got.Imported != 3 || got.Already != 1 || got.InvalidCount != 4 {
		t.Fatalf("import: %d %+v", rec.Code, got)
	}
	wantLines := []int{5, 6, 7, 9}
	for i, inv := range got.Invalid {
		if inv.Line != wantLines[i] || inv.Error == "" || len(inv.JID) > maxEchoedJID {
			t.Fatalf("invalid[%d] = %+v, want line %d", i, inv, wantLines[i])
		}
	}
	// Juliet@EXAMPLE.net folds to juliet@example.net (line 8: "already").
	rec = e.do(t, imp("alice", body, admin))
	decode(t, rec, &got)
	if got.Imported != 0 || got.Already != 4 || got.InvalidCount != 4 {
		t.Fatalf("second import is not idempotent: %+v", got)
	}
	if f, _ := e.store.Following(context.Background(), "romeo@example.net"); !slices.Equal(f, []string{"alice"}) {
		t.Fatalf("followee index of romeo = %v", f)
	}
	// someone@example.net came in with the lines before the 413's limit.
	if p, _ := e.store.Profile(context.Background(), "alice"); p.Followers != 4 {
		t.Fatalf("alice has %d followers", p.Followers)
	}
	e.wantCounter(t, "starling_httpapi_followers_imported_lines_total", map[string]string{"outcome": "imported"}, 4)
}

// TestImportConstantMemory streams 200,000 lines that are never in memory
// as a whole and checks that the heap does not grow with them.
func TestImportConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200,000 lines")
	}
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	e.createUser(t, "star")
	const n = 200_000
	pr, pw := io.Pipe()
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(pw, "follower%07d@example.net\n", i); err != nil {
				return
			}
			if i == n/2 {
				fmt.Fprintf(pw, "broken@\n")
			}
		}
		pw.Close()
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	r := httptest.NewRequest(http.MethodPost, "/v1/users/star/followers/import", pr)
	r.Header.Set("Authorization", "Bearer "+testAdminToken)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var got importResult
	decode(t, rec, &got)
	if rec.Code != http.StatusOK || got.Imported != n || got.InvalidCount != 1 || got.Invalid[0].Line != n/2+2 {
		t.Fatalf("import: %d %+v", rec.Code, got)
	}
	// The body is ~5.4 MB; the handler must not have held it.
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 4<<20 {
		t.Fatalf("heap grew by %d bytes while importing", grew)
	}
	if p, _ := e.store.Profile(context.Background(), "star"); p.Followers != n {
		t.Fatalf("%d followers stored", p.Followers)
	}
}
