package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialFunc opens a connection; memgate's load, readiness checks and probes
// use the service's when it runs in a network namespace of its own.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// netnsDialer dials inside the network namespace at path (inNetns).
//
// Only loopback addresses are dialled, given as IP literals: a host name
// would be resolved by a thread in memgate's own namespace, so a service
// that made memgate look one up (a redirect to exfil-DATA.example) would
// send a DNS query of its choosing from the host.
func netnsDialer(path string) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := loopbackLiteral(addr); err != nil {
			return nil, err
		}
		type result struct {
			conn net.Conn
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			var conn net.Conn
			err := inNetns(path, func() (err error) {
				var d net.Dialer
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			ch <- result{conn, err}
		}()
		select {
		case r := <-ch:
			return r.conn, r.err
		case <-ctx.Done():
			go func() {
				if r := <-ch; r.conn != nil {
					r.conn.Close()
				}
			}()
			return nil, ctx.Err()
		}
	}
}

// inNetns runs f on an OS thread switched into the network namespace at
// path (a socket stays in the namespace it was made in), and switches the
// thread back before it is released. It must not simply end locked: the
// runtime would retire the thread, and a service started from that thread
// would get its parent-death signal. If switching back fails, the thread
// stays locked and goes with the goroutine.
func inNetns(path string, f func() error) error {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("service network: %w", err)
	}
	defer home.Close()
	ns, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("service network: %w", err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("service network: setns: %w", err)
	}
	err = f()
	if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	return err
}

// ErrNotLoopback is a dial to anything but a loopback IP literal inside
// the service's network namespace.
var ErrNotLoopback = errors.New("memgate dials only loopback addresses (IP literals) inside the service's network namespace")

func loopbackLiteral(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrNotLoopback, addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: not %q", ErrNotLoopback, addr)
	}
	return nil
}
