package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"starling.dev/starling"
)

// pager serves fixed pages, each resumable after its last JID.
type pager struct{ pages [][]string }

func (p *pager) WalkFollowers(_ context.Context, _, after string, _ int, _ bool, page func([]string, string) error) error {
	skipping := after != ""
	for i, pg := range p.pages {
		last := fmt.Sprintf("page%d", i)
		if skipping {
			skipping = last != after
			continue
		}
		if err := page(pg, last); err != nil {
			return err
		}
	}
	return nil
}

type sink struct {
	got  []Batch
	fail error
}

type done struct{ err error }

func (d done) Wait(context.Context) error { return d.err }

func (s *sink) PublishBatch(_ context.Context, b Batch) (Pending, error) {
	b.To = slices.Clone(b.To) // the stage reuses its buffer
	s.got = append(s.got, b)
	return done{s.fail}, nil
}

func jids(n int, tag string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@example.org", tag, i)
	}
	return out
}

func TestFanSplitsPagesIntoBatches(t *testing.T) {
	pages := [][]string{jids(3, "a"), jids(BatchSize+7, "b"), nil, jids(BatchSize, "c")}
	s := &sink{}
	n, err := NewFanout(&pager{pages}, s, nil).Fan(context.Background(), starling.Post{ID: "p1", Author: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSizes := []int{3, BatchSize, 7, BatchSize}
	if n != len(wantSizes) || len(s.got) != len(wantSizes) {
		t.Fatalf("%d batches, want %d", len(s.got), len(wantSizes))
	}
	var all []string
	for i, b := range s.got {
		if len(b.To) != wantSizes[i] || b.Page != i || b.Post.ID != "p1" {
			t.Errorf("batch %d: page %d, %d recipients, post %q", i, b.Page, len(b.To), b.Post.ID)
		}
		all = append(all, b.To...)
	}
	want := slices.Concat(pages...)
	if !slices.Equal(all, want) {
		t.Fatal("recipients differ from the follower pages")
	}
}

func TestFanReportsUnstoredBatch(t *testing.T) {
	s := &sink{fail: errors.New("nats: timeout")}
	_, err := NewFanout(&pager{[][]string{jids(2, "a")}}, s, nil).Fan(context.Background(), starling.Post{ID: "p", Author: "a"}, nil)
	if err == nil {
		t.Fatal("a batch JetStream did not store must fail the post, so it is retried")
	}
}

func TestFanNoFollowers(t *testing.T) {
	s := &sink{}
	n, err := NewFanout(&pager{[][]string{nil}}, s, nil).Fan(context.Background(), starling.Post{ID: "p", Author: "a"}, nil)
	if err != nil || n != 0 || len(s.got) != 0 {
		t.Fatalf("n=%d err=%v batches=%d", n, err, len(s.got))
	}
}

func TestBatchRoundTrip(t *testing.T) {
	post := starling.Post{ID: "01J", Author: "alice", Text: "line one\nline two", AuthorName: "A"}
	to := jids(BatchSize, "r")
	data, err := Batch{Post: post, Page: 7, To: to}.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = b.Recipients(func(j []byte) error { got = append(got, string(j)); return nil })
	if b.Post != post || b.Page != 7 || b.Len() != BatchSize || !slices.Equal(got, to) || !strings.HasPrefix(b.MsgID(), "01J.7.") {
		t.Fatalf("round trip: %+v, %d recipients", b.Post, len(got))
	}
	empty, err := Batch{Post: post}.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := DecodeBatch(empty); err != nil || b.Len() != 0 {
		t.Fatalf("empty batch: %v, %d", err, b.Len())
	}
	if b.MsgID() != (Batch{Post: post, Page: 7, To: to}).MsgID() {
		t.Fatal("a decoded batch and the batch it came from have different message ids")
	}
	if (Batch{Post: post, Page: 7, To: to[1:]}).MsgID() == b.MsgID() {
		t.Fatal("batches of one page with different recipients share a message id: JetStream would drop one")
	}
	if _, err := (Batch{Post: post, To: []string{"a@b\nc@d"}}).Encode(nil); err == nil {
		t.Fatal("a recipient with a line break was encoded")
	}
}

func TestDecodeBatchRefusesBadInput(t *testing.T) {
	over, _ := Batch{Post: starling.Post{ID: "x", Author: "a"}, To: jids(BatchSize+1, "r")}.Encode(nil)
	for name, data := range map[string][]byte{
		"oversize":   over,
		"no post id": []byte("B1 0\n{\"author\":\"a\"}"),
		"garbage":    []byte("not a batch"),
		"bad page":   []byte("B1 x\n{\"id\":\"x\",\"author\":\"a\"}"),
		"bad json":   []byte("B1 0\n{"),
	} {
		if _, err := DecodeBatch(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := starling.DecodePost([]byte(`not json`)); err == nil {
		t.Fatal("garbage decoded as a post")
	}
}

func TestLanes(t *testing.T) {
	if laneSubject(0) != firstLaneSubject {
		t.Fatal("a post's first page must go to the first lane")
	}
	for page := 1; page < 100; page++ {
		if s := laneSubject(page); s == firstLaneSubject || !strings.HasPrefix(s, deliveriesSubjectPrefix) {
			t.Fatalf("page %d on %s", page, s)
		}
	}
}

func TestBatchChunks(t *testing.T) {
	to := jids(403, "c")
	data, _ := Batch{Post: starling.Post{ID: "x", Author: "a"}, Page: 3, To: to}.Encode(nil)
	decoded, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]Batch{"built": {Post: starling.Post{ID: "x", Author: "a"}, Page: 3, To: to}, "decoded": decoded} {
		var got []string
		var sizes []int
		err := b.Chunks(100, func(part Batch) error {
			sizes = append(sizes, part.Len())
			if part.Page != 3 || part.Post.ID != "x" {
				t.Errorf("%s: part lost its post or page", name)
			}
			return part.Recipients(func(j []byte) error { got = append(got, string(j)); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, to) || !slices.Equal(sizes, []int{100, 100, 100, 100, 3}) {
			t.Fatalf("%s: sizes %v, %d recipients", name, sizes, len(got))
		}
	}
}
