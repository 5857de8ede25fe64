// Package s2s makes the gateway the XMPP server of its domain: it accepts
// server-to-server streams from remote servers and opens its own to them,
// one per remote domain, authenticated with Server Dialback (XEP-0220,
// package dialback) over STARTTLS.
//
// Streams in s2s are one-way: a remote server sends its stanzas on the
// stream it opened to us (inbound), and we send ours on the stream we open
// to it (outbound). Dialback needs both: the originating server sends its
// key on its own stream, and the receiving server asks the authoritative
// server whether the key is genuine on a stream of its own to it, which
// may not be authenticated yet. So an outbound stream carries <db:verify/>
// from the moment its features are read, and an inbound one answers
// <db:verify/> at once.
//
// mellium.im/xmpp provides the pieces used here (the stream header's
// Info, stream errors, jid, dial.Dialer's SRV resolution); its Session is
// not used, because it negotiates client-style features, answers every
// unhandled IQ on the stream it came from (in s2s that stream is the
// peer's, which must not carry our stanzas), and cannot carry dialback
// traffic while it negotiates.
//
// A Server's key depends only on the shared secret, so any replica of the
// gateway can answer a remote server's <db:verify/> for a key another
// replica issued, and DNS SRV records can spread remote servers over the
// replicas.
package s2s
