package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// pager serves fixed pages, as Redis SSCAN would (pages may exceed the hint).
type pager struct{ pages [][]string }

func (p *pager) FollowerPage(_ context.Context, _ string, cursor uint64, _ int, buf []string) ([]string, uint64, error) {
	next := cursor + 1
	if int(next) >= len(p.pages) {
		next = 0
	}
	return append(buf, p.pages[cursor]...), next, nil
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
	n, err := NewFanout(&pager{pages}, s, nil).Fan(context.Background(), Post{ID: "p1", Author: "alice"}, nil)
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
	_, err := NewFanout(&pager{[][]string{jids(2, "a")}}, s, nil).Fan(context.Background(), Post{ID: "p", Author: "a"}, nil)
	if err == nil {
		t.Fatal("a batch JetStream did not store must fail the post, so it is retried")
	}
}

func TestFanNoFollowers(t *testing.T) {
	s := &sink{}
	n, err := NewFanout(&pager{[][]string{nil}}, s, nil).Fan(context.Background(), Post{ID: "p", Author: "a"}, nil)
	if err != nil || n != 0 || len(s.got) != 0 {
		t.Fatalf("n=%d err=%v batches=%d", n, err, len(s.got))
	}
}

func TestDecodeBatchRefusesOversize(t *testing.T) {
	if _, err := DecodeBatch([]byte(`{"post":{"id":"x","author":"a"},"to":[]}`)); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	big := `{"post":{"id":"x","author":"a"},"to":[`
	for i := 0; i <= BatchSize; i++ {
		if i > 0 {
			big += ","
		}
		big += `"j@e"`
	}
	if _, err := DecodeBatch([]byte(big + "]}")); err == nil {
		t.Fatal("a batch over BatchSize decoded")
	}
	if _, err := DecodeBatch([]byte(`{"post":{"author":"a"}}`)); err == nil {
		t.Fatal("a batch without post id decoded")
	}
	if _, err := DecodePost([]byte(`not json`)); err == nil {
		t.Fatal("garbage decoded as a post")
	}
}
