package fanout

import (
	"errors"
	"time"
)

// Errors shared by the stores and their callers, so that httpapi and xmpp can
// branch on them without importing the store.
var (
	// ErrUnknownUser is returned for operations on an author that does not exist.
	ErrUnknownUser = errors.New("starling: unknown user")
	// ErrUserExists is returned when creating a username that is taken.
	ErrUserExists = errors.New("starling: user exists")
	// ErrUnknownToken is returned when no user owns a token.
	ErrUnknownToken = errors.New("starling: unknown token")
)

// Profile is an author's public record.
type Profile struct {
	Username    string
	DisplayName string
	Bio         string
	CreatedAt   time.Time
	Followers   int64
	Posts       int64
}
