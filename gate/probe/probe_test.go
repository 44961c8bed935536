package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"strings"
	"sync"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/memgate/memgate/gate"
)

func pprofServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestPprofDetectAndRead(t *testing.T) {
	srv := pprofServer(t)
	p := NewPprof(srv.URL+"/debug/pprof/", nil)
	ctx := context.Background()
	if err := p.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := p.Read(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.HeapInuse == 0 || r.Goroutines < 2 {
		t.Fatalf("reading %+v", r)
	}
	after, err := p.Read(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if after.GCCycles <= r.GCCycles {
		t.Errorf("forced GC did not run: %d -> %d cycles", r.GCCycles, after.GCCycles)
	}
	for _, name := range []string{"heap", "goroutine"} {
		b, err := p.Profile(ctx, name, name == "heap")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := profile.ParseData(b); err != nil {
			t.Errorf("%s profile does not parse: %v", name, err)
		}
	}
}

// A catch-all route answers 200 to any path: that is not pprof.
func TestCatchAllIsNotPprof(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"path":"` + r.URL.Path + `"}`))
	}))
	defer srv.Close()
	err := NewPprof(srv.URL+"/debug/pprof/", nil).Detect(context.Background())
	if !errors.Is(err, ErrNotPprof) {
		t.Fatalf("err = %v, want ErrNotPprof", err)
	}
	// A 404 is not pprof either.
	srv404 := httptest.NewServer(http.NotFoundHandler())
	defer srv404.Close()
	if err := NewPprof(srv404.URL+"/debug/pprof/", nil).Detect(context.Background()); !errors.Is(err, ErrNotPprof) {
		t.Fatalf("404: err = %v", err)
	}
}

func TestParseHeapText(t *testing.T) {
	page := "heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 100\n# HeapInuse = 4202496\n# NumGC = 17\n"
	r, err := ParseHeapText([]byte(page))
	if err != nil {
		t.Fatal(err)
	}
	if r.HeapInuse != 4202496 || r.GCCycles != 17 {
		t.Fatalf("%+v", r)
	}
	for _, bad := range []string{"", "hello", "# HeapInuse = lots\n# NumGC = 1\n", "# HeapInuse = 5\n"} {
		if _, err := ParseHeapText([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	if n, err := ParseGoroutineTotal("goroutine profile: total 35012\n"); err != nil || n != 35012 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	for _, bad := range []string{"", "<html>", "goroutine profile: total -3", "goroutine profile: total x" + strings.Repeat("9", 100)} {
		if _, err := ParseGoroutineTotal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Every read of the service is bounded, and one past its bound is
// gate.ErrTooLarge with the URL that sent it: a binary profile, the heap
// page, the reader's numbers. The bodies are streamed, never held by the
// server, and read only up to the bound.
func TestBodiesAreBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte("# HeapInuse = 1\n" + strings.Repeat("x", 1<<20))
		for i := 0; i < MaxProfileBody>>20+2; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	_, profErr := NewPprof(srv.URL+"/", nil).Profile(ctx, "heap", false)
	_, textErr := NewPprof(srv.URL+"/", nil).Read(ctx, true)
	_, readerErr := NewReader(strings.TrimPrefix(srv.URL, "http://"), nil).Read(ctx, true)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{profErr, "/heap: too large: the body passes 64.0 MiB"},
		{textErr, "/heap?gc=1&debug=1: too large: the body passes 32.0 MiB"},
		{readerErr, "/memgate/v1/metrics?gc=1: too large: the body passes 1.0 MiB"},
	} {
		if !errors.Is(tc.err, gate.ErrTooLarge) || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("err = %v, want gate.ErrTooLarge and %q", tc.err, tc.want)
		}
	}
}

// Headers are bounded too: net/http would take 10 MB of them.
func TestHeadersAreBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			w.Header().Add("X-Big", strings.Repeat("x", 1<<19))
		}
	}))
	defer srv.Close()
	_, err := NewPprof(srv.URL+"/", nil).Profile(context.Background(), "heap", false)
	if err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("err = %v", err)
	}
}

// A service that answers a profile request with a redirect to another
// host does not send memgate there: nothing is dialled but the service
// (a host name would be resolved, a DNS query of the service's choosing).
func TestProfileRedirectOffTheHostIsNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://exfil-data.attacker.example/", http.StatusFound)
	}))
	defer srv.Close()
	var mu sync.Mutex
	var dialed []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	_, err := NewPprof(srv.URL+"/debug/pprof/", dial).Profile(context.Background(), "heap", false)
	if err == nil || !strings.Contains(err.Error(), "redirected away to http://exfil-data.attacker.example/") {
		t.Fatalf("profile: %v", err)
	}
	for _, a := range dialed {
		if a != srv.Listener.Addr().String() {
			t.Fatalf("dialled %s", a)
		}
	}
}
