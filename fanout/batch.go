package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"starling.dev/starling"
)

// Batch is one unit of delivery work: a post and up to BatchSize bare JIDs
// of followers. Page numbers the batches of one post from zero, so the pair
// (Post.ID, Page) names a batch; MsgID adds its recipients for JetStream's
// deduplication.
//
// A batch is built with To and travels in a line format (see Encode), which
// the send stage reads without allocating per recipient: Recipients walks
// the JIDs as byte slices of the message itself.
type Batch struct {
	Post starling.Post
	Page int
	// To are the recipients of a batch being built.
	To []string

	recipients []byte // of a decoded batch: JIDs, one per line
	count      int
}

// batchMagic starts every encoded batch; the format may change only with it.
const batchMagic = "B1 "

// MsgID is the Nats-Msg-Id of the batch, <post id>.<page>.<digest>, the
// digest an FNV-1a hash of the recipients: a post redelivered to the
// fanout stage does not enqueue the same batch twice, while a batch of the
// same number that differs (followers came and went between the attempts)
// is not dropped as a duplicate of the first.
func (b Batch) MsgID() string {
	const offset, prime = 14695981039346656037, 1099511628211 // FNV-1a, 64 bits
	var h uint64 = offset
	_ = b.Recipients(func(jid []byte) error {
		for _, c := range jid {
			h = (h ^ uint64(c)) * prime
		}
		h = (h ^ '\n') * prime
		return nil
	})
	return b.Post.ID + "." + strconv.Itoa(b.Page) + "." + strconv.FormatUint(h, 36)
}

// Len is the number of recipients.
func (b Batch) Len() int {
	if b.To != nil {
		return len(b.To)
	}
	return b.count
}

// Encode appends the batch in its line format:
//
//	B1 <page>\n<post as JSON>\n<jid>\n<jid>\n...
//
// JSON escapes line breaks inside strings and JIDs cannot hold them, so
// lines cannot be confused.
func (b Batch) Encode(dst []byte) ([]byte, error) {
	post, err := json.Marshal(b.Post)
	if err != nil {
		return dst, fmt.Errorf("fanout: encode batch: %w", err)
	}
	dst = append(dst, batchMagic...)
	dst = strconv.AppendInt(dst, int64(b.Page), 10)
	dst = append(dst, '\n')
	dst = append(dst, post...)
	for _, j := range b.To {
		if j == "" || strings.ContainsAny(j, "\r\n") {
			return dst, fmt.Errorf("fanout: encode batch: bad recipient %q", j)
		}
		dst = append(dst, '\n')
		dst = append(dst, j...)
	}
	return dst, nil
}

// DecodeBatch parses a batch from a DeliveriesStream message. The batch
// refers to data, which must stay unchanged while the batch is used.
func DecodeBatch(data []byte) (Batch, error) {
	rest, ok := bytes.CutPrefix(data, []byte(batchMagic))
	if !ok {
		return Batch{}, errors.New("fanout: decode batch: not a batch")
	}
	pageLine, rest, _ := bytes.Cut(rest, []byte{'\n'})
	page, err := strconv.Atoi(string(pageLine))
	if err != nil || page < 0 {
		return Batch{}, fmt.Errorf("fanout: decode batch: page %q", pageLine)
	}
	postLine, recipients, _ := bytes.Cut(rest, []byte{'\n'})
	var b Batch
	if err := json.Unmarshal(postLine, &b.Post); err != nil {
		return Batch{}, fmt.Errorf("fanout: decode batch: %w", err)
	}
	if err := b.Post.Validate(); err != nil {
		return Batch{}, err
	}
	b.Page, b.recipients = page, recipients
	if len(recipients) > 0 {
		b.count = bytes.Count(recipients, []byte{'\n'}) + 1
	}
	if b.count > BatchSize {
		return Batch{}, fmt.Errorf("fanout: batch of %d recipients exceeds %d", b.count, BatchSize)
	}
	return b, nil
}

// Recipients calls f with each recipient's JID. For a decoded batch the
// slice points into the message and must not be kept.
func (b Batch) Recipients(f func(jid []byte) error) error {
	if b.To != nil {
		for _, j := range b.To {
			if err := f([]byte(j)); err != nil {
				return err
			}
		}
		return nil
	}
	rest := b.recipients
	for len(rest) > 0 {
		line, more, _ := bytes.Cut(rest, []byte{'\n'})
		if len(line) > 0 {
			if err := f(line); err != nil {
				return err
			}
		}
		rest = more
	}
	return nil
}

// Chunks calls f with consecutive parts of the batch of at most n
// recipients each (the same post and page). It allocates nothing for a
// decoded batch: the parts share its message.
func (b Batch) Chunks(n int, f func(part Batch) error) error {
	if n < 1 {
		n = 1
	}
	if b.To != nil {
		for to := b.To; len(to) > 0; {
			k := min(n, len(to))
			part := b
			part.To = to[:k]
			if err := f(part); err != nil {
				return err
			}
			to = to[k:]
		}
		return nil
	}
	rest, left := b.recipients, b.count
	for len(rest) > 0 && left > 0 {
		k := min(n, left)
		end := 0
		for i := 0; i < k; i++ {
			j := bytes.IndexByte(rest[end:], '\n')
			if j < 0 {
				end = len(rest)
				break
			}
			end += j + 1
		}
		part := b
		part.recipients = bytes.TrimSuffix(rest[:end], []byte{'\n'})
		part.count = k
		if err := f(part); err != nil {
			return err
		}
		rest, left = rest[end:], left-k
	}
	return nil
}
