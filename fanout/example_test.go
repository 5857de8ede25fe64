package fanout_test

import (
	"context"
	"fmt"
	"strings"

	"starling.dev/starling"
	"starling.dev/starling/fanout"
)

func ExampleBatch_Encode() {
	b := fanout.Batch{
		Post: starling.Post{ID: "01J", Author: "alice", Text: "hello"},
		Page: 0,
		To:   []string{"bob@example.org", "carol@example.net"},
	}
	data, err := b.Encode(nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(data))
	fmt.Println("id:", b.MsgID())
	// Output:
	// B1 0
	// {"id":"01J","author":"alice","text":"hello","created_at":"0001-01-01T00:00:00Z"}
	// bob@example.org
	// carol@example.net
	// id: 01J.0.sgufsgb8bhl0
}

func ExampleDecodeBatch() {
	data := []byte("B1 3\n{\"id\":\"01J\",\"author\":\"alice\",\"text\":\"hello\"}\nbob@example.org\ncarol@example.net")
	b, err := fanout.DecodeBatch(data)
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Post.Author, b.Page, b.Len())
	_ = b.Recipients(func(jid []byte) error {
		fmt.Println(string(jid)) // jid points into data: copy it to keep it
		return nil
	})
	// Output:
	// alice 3 2
	// bob@example.org
	// carol@example.net
}

func ExampleBatch_Chunks() {
	b := fanout.Batch{Post: starling.Post{ID: "01J", Author: "alice"}, To: []string{"a@x", "b@x", "c@x", "d@x", "e@x"}}
	_ = b.Chunks(2, func(part fanout.Batch) error {
		var to []string
		_ = part.Recipients(func(jid []byte) error { to = append(to, string(jid)); return nil })
		fmt.Println(part.Page, strings.Join(to, " "))
		return nil
	})
	// Output:
	// 0 a@x b@x
	// 0 c@x d@x
	// 0 e@x
}

// followers is an in-memory FollowerPager of fixed pages; the cursor of
// each is its last JID.
type followers [][]string

func (f followers) WalkFollowers(_ context.Context, _, after string, _ int, _ bool, page func([]string, string) error) error {
	for _, p := range f {
		last := p[len(p)-1]
		if after != "" && last <= after {
			continue
		}
		if err := page(p, last); err != nil {
			return err
		}
	}
	return nil
}

// printSink is a BatchSink that prints each batch and stores it at once.
type printSink struct{}

type stored struct{}

func (stored) Wait(context.Context) error { return nil }

func (printSink) PublishBatch(_ context.Context, b fanout.Batch) (fanout.Pending, error) {
	fmt.Printf("batch %s.%d: %d recipients from %s\n", b.Post.ID, b.Page, b.Len(), b.To[0])
	return stored{}, nil
}

func ExampleFanout_Fan() {
	page := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d@example.org", prefix, i)
		}
		return out
	}
	// A page larger than BatchSize is split; each batch is numbered.
	pager := followers{page("a", 3), page("b", fanout.BatchSize+1)}
	f := fanout.NewFanout(pager, printSink{}, nil)
	n, err := f.Fan(context.Background(), starling.Post{ID: "01J", Author: "alice"}, nil)
	fmt.Println(n, "batches,", err)
	// Output:
	// batch 01J.0: 3 recipients from a0@example.org
	// batch 01J.1: 500 recipients from b0@example.org
	// batch 01J.2: 1 recipients from b500@example.org
	// 3 batches, <nil>
}
