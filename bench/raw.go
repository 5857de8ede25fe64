package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/internal/testenv"
	"starling.dev/starling/xmpp"
)

// rawSender is the smallest possible component: it writes the stanzas
// Starling sends (xmpp.NewDelivery renders them, byte for byte) in
// batches, each followed by an XEP-0199 ping to the server, and keeps at
// most window batches unanswered. Against ejabberd the window is what keeps
// it under max_fsm_queue (10,000 stanzas).
type rawSender struct {
	conn   net.Conn
	domain string
	pingTo string
	sc     *testenv.Scanner
	sem    chan struct{}
	done   chan struct{}
}

func dialRaw(t *runner, addr, domain, secret, pingTo string, window int) *rawSender {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // not before: see testenv.DialComponent
	conn, err := testenv.DialComponent(ctx, addr, domain, secret)
	if err != nil {
		t.Fatalf("raw sender: %v", err)
	}
	r := &rawSender{conn: conn, domain: domain, pingTo: pingTo, sc: testenv.NewScanner("<iq"), sem: make(chan struct{}, window), done: make(chan struct{})}
	release := func(tag []byte) {
		if bytes.Contains(tag, []byte("result")) || bytes.Contains(tag, []byte("error")) {
			select {
			case <-r.sem:
			default:
			}
		}
	}
	r.sc.OnIQ(release)
	go func() {
		_ = r.sc.Pump(conn)
		close(r.done)
	}()
	t.Cleanup(r.close)
	return r
}

func (r *rawSender) close() {
	_ = r.conn.Close()
	<-r.done
}

// send writes d addressed to each of the n JIDs name(i), in batches of
// batch stanzas, and returns when the server has answered the last ping.
func (r *rawSender) send(d *xmpp.Delivery, n, batch int, name func(i int) string, within time.Duration) error {
	return r.sendWith(d.AppendTo, n, batch, name, within)
}

func (r *rawSender) sendWith(render func(dst []byte, to string) []byte, n, batch int, name func(i int) string, within time.Duration) error {
	w := bufio.NewWriterSize(r.conn, 64<<10)
	deadline := time.Now().Add(within)
	_ = r.conn.SetWriteDeadline(deadline)
	defer r.conn.SetWriteDeadline(time.Time{})
	pings := 0
	var one []byte
	for i := 0; i < n; {
		select {
		case r.sem <- struct{}{}:
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("raw sender: no ping answer before the deadline (%d of %d sent)", i, n)
		case <-r.done:
			return fmt.Errorf("raw sender: the server closed the stream after %d of %d stanzas", i, n)
		}
		end := min(i+batch, n)
		for ; i < end; i++ {
			one = render(one[:0], name(i))
			if _, err := w.Write(one); err != nil {
				return err
			}
		}
		pings++
		fmt.Fprintf(w, `<iq type="get" from="%s" to="%s" id="raw-%d"><ping xmlns="urn:xmpp:ping"/></iq>`, r.domain, r.pingTo, pings)
		if err := w.Flush(); err != nil {
			return err
		}
	}
	// Every ping answered: the window drains.
	for range cap(r.sem) {
		select {
		case r.sem <- struct{}{}:
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("raw sender: last pings unanswered")
		case <-r.done:
			return fmt.Errorf("raw sender: the server closed the stream")
		}
	}
	for range cap(r.sem) {
		<-r.sem
	}
	return nil
}

// benchPost is the post every scenario sends: the same text, so that every
// stanza of a payload profile has the same size.
func benchPost(author, id string) starling.Post {
	return starling.Post{
		ID:         id,
		Author:     author,
		AuthorName: "Bench " + author,
		Text:       benchText,
		CreatedAt:  time.Now().UTC(),
	}
}

// benchText is the text of every post the scenarios time, through the API
// or written raw: the same stanza size either way.
const benchText = "Starling benchmark post: one message to every follower, in real time, from the author's own JID."

func follower(i int) string { return "f" + strconv.Itoa(i) + "@" + sinkDomain }
