package service

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What descriptors are open on, read from /proc as for a service: files by
// path, connections by the address they reach, listeners by theirs.
func TestFDTargetsNameFilesAndConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.lock")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// A connection whose client has gone, never closed here.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	served := make(chan net.Conn, 1)
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			served <- c
		}
	}()
	gone, err := net.Dial("tcp", ln2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	held := <-served
	defer held.Close()
	gone.Close()
	time.Sleep(50 * time.Millisecond) // the FIN arrives
	got, err := fdTargets(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got[path] != 3 {
		t.Errorf("%s: %d descriptors, want 3 (all: %v)", path, got[path], got)
	}
	if n := got["TCP connection to "+ln.Addr().String()]; n != 2 {
		t.Errorf("connections to %s: %d, want 2 (all: %v)", ln.Addr(), n, got)
	}
	if n := got["TCP listener on "+ln.Addr().String()]; n != 1 {
		t.Errorf("listener on %s: %d, want 1 (all: %v)", ln.Addr(), n, got)
	}
	if n := got["TCP connection its client closed (CLOSE_WAIT) on "+ln2.Addr().String()]; n != 1 {
		t.Errorf("connections left by their client: %d, want 1 (all: %v)", n, got)
	}
	for k := range got {
		if strings.HasPrefix(k, "socket:[") || strings.HasPrefix(k, "pipe:[") {
			t.Errorf("unnamed target %q", k)
		}
	}
}

// A process's outgoing connections are told from those it accepted by
// the port: accepted ones are on a port it listens on.
func TestClientSocketsAreTheOutgoingConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		defer (<-accepted).Close()
	}
	before, err := clientSockets(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 3 {
		t.Fatalf("%d outgoing connections, want the 3 dialled (not the 3 accepted)", len(before))
	}
	// One more: the three are still the same sockets.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer (<-accepted).Close()
	after, _ := clientSockets(os.Getpid())
	kept := 0
	for s := range before {
		if after[s] {
			kept++
		}
	}
	if len(after) != 4 || kept != 3 {
		t.Fatalf("after one more dial: %d connections, %d of the first 3 kept", len(after), kept)
	}
}

func TestHexAddr(t *testing.T) {
	for in, want := range map[string]string{"0100007F:1F90": "127.0.0.1:8080", "00000000000000000000000001000000:0050": "[::1]:80", "bogus": "bogus"} {
		if got := hexAddr(in); got != want {
			t.Errorf("hexAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
