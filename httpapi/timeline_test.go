package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestGetStatus(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	id := acceptedID(t, e.post(t, alice, "", "hello\r\nworld"))
	rec := e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + id})
	var got statusResponse
	decode(t, rec, &got)
	want := statusResponse{ID: id, Author: "alice", Text: "hello\nworld", CreatedAt: "2025-03-14T15:09:26.535Z"}
	if rec.Code != http.StatusOK || got != want {
		t.Fatalf("%d %+v, want %+v", rec.Code, got, want)
	}
	for _, bad := range []string{"01JAAAAAAAAAAAAAAAAAAAAAAA", "nope", strings.ToLower(id), id + "0", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + bad}), 404, typeBlank, "no status")
	}
}

func TestListStatuses(t *testing.T) {
	e := newAPI(t, newRedisStore(t), &fakePublisher{}, nil)
	alice := e.createUser(t, "alice")
	e.createUser(t, "bob")
	var ids []string
	for i := range 25 {
		ids = append(ids, acceptedID(t, e.post(t, alice, "", fmt.Sprint("post ", i))))
	}
	list := func(user, query string) request {
		return request{method: http.MethodGet, path: "/v1/users/" + user + "/statuses" + query}
	}
	cases := []struct {
		name   string
		req    request
		status int
		typ    string
		detail string
	}{
		{"unknown user", list("carol", ""), 404, typeBlank, `no user "carol"`},
		{"impossible name", list("Carol", ""), 404, typeBlank, `no user "Carol"`},
		{"limit zero", list("alice", "?limit=0"), 400, typeInvalidQuery, "limit must be an integer from 1 to 100"},
		{"limit too big", list("alice", "?limit=101"), 400, typeInvalidQuery, "from 1 to 100"},
		{"limit not a number", list("alice", "?limit=ten"), 400, typeInvalidQuery, "from 1 to 100"},
		{"bad cursor", list("alice", "?before=yesterday"), 400, typeInvalidQuery, "before must be a status id"},
		{"empty cursor", list("alice", "?before="), 400, typeInvalidQuery, "before must be a status id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, tc.typ, tc.detail)
		})
	}
	// Walk every page: newest first, nothing twice, nothing missed.
	var seen []string
	query := "?limit=10"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rec := e.do(t, list("alice", query))
		var page statusPage
		decode(t, rec, &page)
		for _, s := range page.Statuses {
			seen = append(seen, s.ID)
		}
		if page.Next == "" {
			break
		}
		query = "?limit=10&before=" + page.Next
	}
	if len(seen) != 25 {
		t.Fatalf("saw %d statuses, want 25", len(seen))
	}
	for i, id := range seen {
		if id != ids[24-i] {
			t.Fatalf("status %d is %s, want %s", i, id, ids[24-i])
		}
	}
	var page statusPage
	decode(t, e.do(t, list("alice", "")), &page)
	if len(page.Statuses) != defaultStatusPage || page.Next != ids[5] {
		t.Fatalf("default page: %d statuses, next %s", len(page.Statuses), page.Next)
	}
	var empty statusPage
	decode(t, e.do(t, list("bob", "")), &empty)
	if len(empty.Statuses) != 0 || empty.Next != "" || empty.Statuses == nil {
		t.Fatalf("bob's page: %+v", empty)
	}
}

func TestDeleteStatus(t *testing.T) {
	pub := &fakePublisher{}
	e := newAPI(t, newRedisStore(t), pub, nil)
	alice := e.createUser(t, "alice")
	bob := e.createUser(t, "bob")
	first := acceptedID(t, e.post(t, alice, "", "first"))
	id := acceptedID(t, e.post(t, alice, "", "to delete"))
	del := func(id string, h map[string]string) request {
		return request{method: http.MethodDelete, path: "/v1/statuses/" + id, header: h}
	}
	cases := []struct {
		name   string
		req    request
		status int
		detail string
	}{
		{"no token", del(id, nil), 401, "bearer token"},
		{"bad token", del(id, bearer("stl_nope")), 401, "not valid"},
		{"another user", del(id, bearer(bob)), 403, "only the author or the admin"},
		{"unknown id", del("01JAAAAAAAAAAAAAAAAAAAAAAA", bearer(alice)), 404, "no status"},
		{"not an id", del("x", bearer(alice)), 404, "no status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.req), tc.status, typeBlank, tc.detail)
		})
	}

	// JetStream down: 503, and the post stays.
	pub.fail(errors.New("nats: timeout"))
	rec := e.do(t, del(id, bearer(alice)))
	wantProblem(t, rec, 503, typeBlank, "retry")
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	if rec := e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + id}); rec.Code != http.StatusOK {
		t.Fatalf("post gone after a failed delete: %d", rec.Code)
	}
	pub.fail(nil)

	if rec := e.do(t, del(id, bearer(alice))); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	var retractions []string
	for _, p := range pub.stored() {
		if p.Retracts != "" {
			if p.Retracts != id || p.Author != "alice" || p.ID <= id {
				t.Fatalf("retraction %+v", p)
			}
			retractions = append(retractions, p.ID)
		}
	}
	if len(retractions) != 1 {
		t.Fatalf("%d retractions published (the failed attempt's id must be reused): %v", len(retractions), retractions)
	}
	wantProblem(t, e.do(t, request{method: http.MethodGet, path: "/v1/statuses/" + id}), 404, typeBlank, "no status")
	wantProblem(t, e.do(t, del(id, bearer(alice))), 404, typeBlank, "no status")
	if last, _ := e.store.RecentPosts(context.Background(), "alice", 1); len(last) != 1 || last[0].ID != first {
		t.Fatalf("RecentPosts = %+v, want %s", last, first)
	}
	e.wantPosts(t, "alice", 1)
	// The admin may delete anyone's post.
	if rec := e.do(t, del(first, bearer(testAdminToken))); rec.Code != http.StatusNoContent {
		t.Fatalf("admin delete: %d %s", rec.Code, rec.Body)
	}
}
