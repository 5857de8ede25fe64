// Package xmpp is Starling's XEP-0114 component: the connection to the XMPP
// server and its reconnect loop, the pre-rendered delivery stanzas written on
// the hot path, and the handling of what followers send (IM commands).
//
// Every JID at the component's domain is answered here, so no roster is ever
// loaded: the service JID is the bare domain and each author is
// <username>@<domain>.
//
// In s2s mode (WithFederation) the same component is the XMPP server of its
// domain: it federates with followers' servers itself, through package s2s,
// and its handlers and deliveries work as they do over the component stream.
package xmpp
