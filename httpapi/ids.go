package httpapi

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// idSource makes post ids: ULIDs, so ids sort by creation time, with
// monotonic entropy, so ids made within one millisecond sort by order of
// creation too. MonotonicEntropy is not safe for concurrent use; mu guards it.
type idSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

func newIDSource() *idSource {
	return &idSource{entropy: ulid.Monotonic(rand.Reader, 0)}
}

// next returns a new id for a post made at t.
func (s *idSource) next(t time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := ulid.New(ulid.Timestamp(t), s.entropy)
	if err != nil {
		return "", fmt.Errorf("httpapi: post id: %w", err)
	}
	return id.String(), nil
}
