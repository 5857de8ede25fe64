// Package dialback is XEP-0220 Server Dialback, the part of it that
// mellium.im/xmpp lacks: the keys (XEP-0185's recommended HMAC) and the
// <db:result/> and <db:verify/> elements, parsed from and written to a
// server-to-server stream.
//
// A key depends only on the shared secret, the two domains and the stream
// id, so any replica holding the secret can vouch for a key another replica
// issued: a remote server may ask whichever replica DNS gives it.
package dialback

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// Namespaces of the protocol.
const (
	// NS qualifies <db:result/> and <db:verify/>.
	NS = "jabber:server:dialback"
	// NSFeature is the stream feature a receiving server offers.
	NSFeature = "urn:xmpp:features:dialback"
)

// Key returns the dialback key the originating domain sends to the
// receiving domain on a stream with the given id: the lowercase hex
// HMAC-SHA256 of "receiving originating streamID", keyed with the hex
// SHA-256 of the secret (XEP-0185; Prosody computes the same).
func Key(secret, receiving, originating, streamID string) string {
	k := sha256.Sum256([]byte(secret))
	mac := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	mac.Write([]byte(receiving))
	mac.Write([]byte{' '})
	mac.Write([]byte(originating))
	mac.Write([]byte{' '})
	mac.Write([]byte(streamID))
	return hex.EncodeToString(mac.Sum(nil))
}

// ValidKey reports whether key is the key for those domains and stream, in
// time that does not depend on where a wrong key differs.
func ValidKey(secret, receiving, originating, streamID, key string) bool {
	want := Key(secret, receiving, originating, streamID)
	return subtle.ConstantTimeCompare([]byte(want), []byte(key)) == 1
}
