package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The relay carries memgate's connections into a sandbox's network when
// memgate cannot enter it (an unprivileged memgate has no CAP_SYS_ADMIN of
// its own, which setns requires). The sandbox's first process listens on
// a unix socket in a directory of memgate's, outside the sandbox's view;
// each connection names a loopback port inside, then carries its bytes.
// It can reach only loopback ports of the sandbox's own network.

type relayServer struct{ ln net.Listener }

func listenRelay(path string) (*relayServer, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &relayServer{ln: ln}, nil
}

func (s *relayServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go relayOne(c)
	}
}

func relayOne(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 64)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || port <= 0 || port > 65535 {
		fmt.Fprintf(c, "bad port\n")
		return
	}
	c.SetReadDeadline(time.Time{})
	up, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		fmt.Fprintf(c, "%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "ok\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.(*net.UnixConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

// RelayDialer dials loopback ports inside a sandbox through its relay at
// path. Any host in addr is taken to mean the sandbox's loopback.
func RelayDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("sandbox relay: %w", err)
		}
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		if _, err := io.WriteString(c, port+"\n"); err != nil {
			c.Close()
			return nil, fmt.Errorf("sandbox relay: %w", err)
		}
		// The answer is read a byte at a time: what follows it is the
		// service's and must stay in the connection.
		var b [1]byte
		var ans []byte
		for len(ans) < 512 {
			if _, err := c.Read(b[:]); err != nil {
				c.Close()
				return nil, fmt.Errorf("sandbox relay: %w", err)
			}
			if b[0] == '\n' {
				break
			}
			ans = append(ans, b[0])
		}
		c.SetDeadline(time.Time{})
		if string(ans) != "ok" {
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("in the sandbox: %s", ans)}
		}
		return c, nil
	}
}
