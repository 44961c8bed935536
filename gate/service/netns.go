package service

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialFunc opens a connection; memgate's load, readiness checks and probes
// use the service's when it runs in a network namespace of its own.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// netnsDialer dials inside the network namespace at path: the socket is
// made on an OS thread switched into that namespace (a socket stays in the
// namespace it was made in), and the thread is switched back before it is
// released. It must not simply end locked: the runtime would retire the
// thread, and a service started from that thread would get its
// parent-death signal.
func netnsDialer(path string) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			conn net.Conn
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			home, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("service network: %w", err)}
				return
			}
			defer home.Close()
			ns, err := os.Open(path)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("service network: %w", err)}
				return
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("service network: setns: %w", err)}
				return
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			} // else: stay locked, and the thread goes with the goroutine
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
