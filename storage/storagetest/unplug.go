// Package storagetest holds helpers for tests of the storage layer and of
// its callers.
package storagetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Unpluggable routes a database URL through a TCP proxy on 127.0.0.1 and
// returns the proxied URL and a function that pulls the plug for real: the
// listener closes (new connections are refused) and every open connection
// is cut, as when the database host goes away.
func Unpluggable(t testing.TB, databaseURL string) (string, func()) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("unpluggable: %v", err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("unpluggable: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	unplugged := false
	track := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		if unplugged {
			c.Close()
		}
		conns = append(conns, c)
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	var once sync.Once
	unplug := func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			unplugged = true
			for _, c := range conns {
				c.Close()
			}
		})
	}
	t.Cleanup(unplug)
	u.Host = ln.Addr().String()
	return u.String(), unplug
}
