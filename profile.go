package starling

import (
	"errors"
	"time"
)

// Errors the stores return and their callers branch on.
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

// Name is the name clients show for the author: the display name, or the
// username when there is none.
func (p Profile) Name() string { return DisplayName(p.DisplayName, p.Username) }

// DisplayName returns name, or username when name is empty: the one rule for
// what an author is called wherever a name is shown.
func DisplayName(name, username string) string {
	if name != "" {
		return name
	}
	return username
}
