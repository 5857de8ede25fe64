package testenv

// ServerInfo is how tests reach an XMPP server started for them.
type ServerInfo struct {
	Name            string // "prosody" or "ejabberd"
	Host            string // the c2s virtual host, "localhost"
	ComponentDomain string // the component's domain, "microblog.localhost"
	Secret          string // the component secret
	C2SAddr         string // host:port of client connections
	ComponentAddr   string // host:port of XEP-0114 component connections
}

// XMPPServer is a real XMPP server started by a test: Prosody or ejabberd.
type XMPPServer interface {
	// Info returns the addresses and names of the running server.
	Info() ServerInfo
	// Register creates (or re-creates) the account user@Host.
	Register(t TB, user, password string)
	// Restart stops the server and starts it again with the same ports and
	// data, as an operator's restart would.
	Restart(t TB)
	// Log returns what the server has logged (the tail of it).
	Log() string
}

// Info returns the server's addresses and names.
func (s ServerInfo) Info() ServerInfo { return s }

var _ XMPPServer = (*Prosody)(nil)
