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

func TestHexAddr(t *testing.T) {
	for in, want := range map[string]string{"0100007F:1F90": "127.0.0.1:8080", "00000000000000000000000001000000:0050": "[::1]:80", "bogus": "bogus"} {
		if got := hexAddr(in); got != want {
			t.Errorf("hexAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
