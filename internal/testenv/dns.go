package testenv

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a tiny authoritative DNS server on a loopback UDP port, for
// pointing real XMPP servers (Prosody through libunbound's forwarder,
// ejabberd through its inetrc) and the gateway's own resolver at each other
// without real DNS. It answers the SRV and A records it is given, an empty
// NOERROR for other types of a name it knows, and NXDOMAIN for the rest.
// Answers are tiny, so UDP is enough: nothing is ever truncated.
type DNS struct {
	// Addr is "127.0.0.1:port".
	Addr string
	Port int

	conn net.PacketConn
	done chan struct{}

	mu  sync.Mutex
	srv map[string][]dnsmessage.SRVResource
	a   map[string][]netip.Addr
	// asked counts the questions per name, for tests of who resolves what.
	asked map[string]int
}

// StartDNS starts the server; it stops when the test ends.
func StartDNS(t TB) *DNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: dns: %v", err)
	}
	d := &DNS{
		Addr: conn.LocalAddr().String(), Port: conn.LocalAddr().(*net.UDPAddr).Port,
		conn: conn, done: make(chan struct{}),
		srv: map[string][]dnsmessage.SRVResource{}, a: map[string][]netip.Addr{}, asked: map[string]int{},
	}
	go d.serve()
	t.Cleanup(func() {
		_ = conn.Close()
		<-d.done
	})
	return d
}

// fqdn is name in lower case with its final dot.
func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// AddSRV adds the SRV record _xmpp-server._tcp.<domain> → target:port
// (priority 0, weight 0).
func (d *DNS) AddSRV(t TB, domain, target string, port int) {
	t.Helper()
	tgt, err := dnsmessage.NewName(fqdn(target))
	if err != nil {
		t.Fatalf("testenv: dns: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name := "_xmpp-server._tcp." + fqdn(domain)
	rec := dnsmessage.SRVResource{Target: tgt, Port: uint16(port)}
	if !slices.Contains(d.srv[name], rec) {
		d.srv[name] = append(d.srv[name], rec)
	}
}

// AddA adds an A record.
func (d *DNS) AddA(t TB, name, ip string) {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		t.Fatalf("testenv: dns: %q is not an IPv4 address", ip)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[fqdn(name)] = append(d.a[fqdn(name)], addr)
}

// Asked is how many questions about name the server has answered.
func (d *DNS) Asked(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[fqdn(name)]
}

// Resolver is a Go resolver that asks this server only.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.Addr)
	}}
}

func (d *DNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if out, ok := d.answer(buf[:n]); ok {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}

// answer builds the response to one query.
func (d *DNS) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.ToLower(q.Name.String())
	d.mu.Lock()
	d.asked[name]++
	srvs, as := d.srv[name], d.a[name]
	d.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if srvs == nil && as == nil {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	switch q.Type {
	case dnsmessage.TypeSRV:
		for _, s := range srvs {
			_ = b.SRVResource(rr, s)
		}
	case dnsmessage.TypeA:
		for _, a := range as {
			_ = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
