package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	"starling.dev/starling"
	"starling.dev/starling/xmpp"
)

// checkResult is what -selfcheck prints, as one JSON line.
type checkResult struct {
	Parser   string  `json:"parser"`
	Payload  string  `json:"payload"`
	N        int     `json:"n"`
	Bytes    int     `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	CPU      float64 `json:"cpu_seconds"`
	PerSec   float64 `json:"stanzas_per_cpu_second"`
	Counted  int64   `json:"counted"`
	Answered int64   `json:"answered"`
}

// selfCheck parses, in memory, a stream of n deliveries as Starling renders
// them (with a ping after every 500) and reports how many stanzas a second
// of this process's CPU parses and counts: the receiver's own ceiling, with
// no network and no sender.
func selfCheck(parser, payload string, n int) (checkResult, error) {
	p, err := xmpp.ParsePayload(payload)
	if err != nil {
		return checkResult{}, err
	}
	post := starling.Post{ID: "01JSELFCHECK00000000000000", Author: "bench", AuthorName: "Bench",
		Text: "Starling benchmark post: one message to every follower, in real time, from the author's own JID.", CreatedAt: time.Now().UTC()}
	d := xmpp.NewDelivery("microblog.localhost", p, post)
	var in bytes.Buffer
	fmt.Fprintf(&in, `<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' from='microblog.localhost' id='x'>`, nsComponent, nsStreams)
	var one []byte
	for i := range n {
		one = d.AppendTo(one[:0], "f"+strconv.Itoa(i)+"@sink.localhost")
		in.Write(one)
		if i%500 == 499 {
			fmt.Fprintf(&in, `<iq type="get" from="microblog.localhost" to="localhost" id="ping-%d"><ping xmlns="urn:xmpp:ping"/></iq>`, i)
		}
	}
	in.WriteString("</stream:stream>")
	size := in.Len()

	t := newTally()
	s := newSession(t, rw{&in, io.Discard}, parser)
	cpu0, t0 := cpuTime(), time.Now()
	tok, err := s.meaningful()
	if err == nil && !isRoot(tok) {
		err = fmt.Errorf("stream header: got <%s>", tok.name)
	}
	if err == nil {
		err = s.serve()
	}
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	if err != nil {
		return checkResult{}, err
	}
	counted := t.key("sink.localhost").n.Load()
	if counted != int64(n) {
		return checkResult{}, fmt.Errorf("counted %d messages of %d", counted, n)
	}
	return checkResult{Parser: parser, Payload: payload, N: n, Bytes: size, Seconds: wall.Seconds(), CPU: cpu.Seconds(),
		PerSec: float64(n) / cpu.Seconds(), Counted: counted, Answered: t.answered.Load()}, nil
}

type rw struct {
	io.Reader
	io.Writer
}

// cpuTime is this process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
