package testenv

import (
	"io"
	"net"
	"syscall"
)

// quickAckReader reads conn and asks the kernel after every read to
// acknowledge at once what arrives. A sink that answers pings writes now
// and then, which makes Linux treat the connection as interactive and delay
// its acknowledgements (up to 40 ms); the server, writing with Nagle's
// algorithm on (Prosody's default), then holds back its next small write,
// such as the ping behind a chunk, until the acknowledgement comes: 40 ms
// per chunk, measured. Linux leaves quick-ack mode by itself, so it is asked
// for again after every read.
func quickAckReader(conn net.Conn) io.Reader {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return conn
	}
	return readerFunc(func(p []byte) (int, error) {
		n, err := tc.Read(p)
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
		return n, err
	})
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
