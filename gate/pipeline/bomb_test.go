package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/internal/gzipbomb"
	"github.com/memgate/memgate/internal/testlock"
)

// A 4 GiB gzip bomb, 4 MiB on the wire, served as the heap profile by a
// test server: fetched (it is well under the 64 MiB download bound) and
// handed to the attribution, it is refused once 64 MiB are inflated, in
// bounded memory. pprof's ParseData, used before, inflated it all: the
// worker ran out of memory, and its rescue again.
func TestGzipBombProfileIsRefusedInBoundedMemory(t *testing.T) {
	bomb := gzipbomb.New(4 << 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bomb.WriteTo(w)
	}))
	defer srv.Close()
	ctx := context.Background()
	var heap bytes.Buffer
	runtime.GC()
	pprofHeap(t, &heap)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	data, err := probe.NewPprof(srv.URL+"/", nil).Profile(ctx, "heap", true)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{opts: Options{AttributeTo: 10}, report: &gate.Report{}, res: Result{Profiles: map[string][]byte{}}}
	err = r.attribute(profiles{heapWarm: heap.Bytes(), heapEnd: data, gorErr: errors.New("not taken")})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes on the wire; refused in %s; %.0f MiB allocated; %v", len(data), took.Round(time.Millisecond), float64(alloc)/(1<<20), err)
	if !errors.Is(err, gate.ErrTooLarge) || !strings.Contains(err.Error(), "the heap profiles (heap-warmup.pb.gz, heap-end.pb.gz)") ||
		!strings.Contains(err.Error(), "the later profile: too large: it decompresses to more than 64.0 MiB") {
		t.Fatalf("err = %v", err)
	}
	// Inflating into a growing buffer up to the 64 MiB limit allocates
	// about twice that; the bomb is 4 GiB.
	if alloc > 4*attribution.MaxProfile {
		t.Errorf("%.0f MiB allocated to refuse a profile, want under %d MiB", float64(alloc)/(1<<20), 4*attribution.MaxProfile>>20)
	}
	if took > 20*time.Second {
		t.Errorf("took %s to refuse it", took)
	}
}

func pprofHeap(t *testing.T, w io.Writer) {
	t.Helper()
	rec := httptest.NewRecorder()
	pprof.Handler("heap").ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/heap", nil))
	w.Write(rec.Body.Bytes())
}

// A service whose pprof is real for readings but hostile in one read: the
// load, the sampling, the profiles and the attribution run as in a gate
// (measure, against an HTTP server of this test standing in for the built
// service), and the gate ends with an error naming the read.
func TestHostileReadsEndTheGateAsAnError(t *testing.T) {
	if testing.Short() {
		t.Skip("runs timed load")
	}
	bomb := gzipbomb.New(1 << 10)
	for _, tc := range []struct {
		name string
		want string
		// serve answers /debug/pprof/ requests; n counts heap?debug=1 reads.
		serve func(w http.ResponseWriter, r *http.Request, n int64) bool
	}{
		{"heap profile bomb", "the heap profiles (heap-warmup.pb.gz, heap-end.pb.gz): heap diff: the",
			func(w http.ResponseWriter, r *http.Request, n int64) bool {
				if r.URL.Path == "/debug/pprof/heap" && r.URL.Query().Get("debug") == "" && n > 3 {
					bomb.WriteTo(w)
					return true
				}
				return false
			}},
		{"goroutine profile bomb", "the goroutine profiles (goroutine-warmup.pb.gz, goroutine-end.pb.gz): goroutine diff: the earlier profile: too large",
			func(w http.ResponseWriter, r *http.Request, n int64) bool {
				if r.URL.Path == "/debug/pprof/goroutine" && r.URL.Query().Get("debug") == "" && n > 2 {
					bomb.WriteTo(w)
					return true
				}
				return false
			}},
		{"heap page past its bound", "a reading while sampling: GET http://127.0.0.1:{{port}}/debug/pprof/heap?debug=1: too large: the body passes 32.0 MiB", func(w http.ResponseWriter, r *http.Request, n int64) bool {
			if r.URL.Path == "/debug/pprof/heap" && r.URL.Query().Get("debug") == "1" && r.URL.Query().Get("gc") == "" && n > 6 {
				chunk := bytes.Repeat([]byte("# HeapInuse = 1\n"), 1<<16)
				for i := 0; i < probe.MaxTextBody/len(chunk)+2; i++ {
					if _, err := w.Write(chunk); err != nil {
						break
					}
				}
				return true
			}
			return false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testlock.Gate(t)
			var heapReads atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
				n := heapReads.Load()
				if r.URL.Path == "/debug/pprof/heap" {
					n = heapReads.Add(1)
				}
				if !tc.serve(w, r, n) {
					pprof.Index(w, r)
				}
			})
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
			srv := httptest.NewServer(mux)
			defer srv.Close()

			cfg := quick()
			cfg.Load.Warmup, cfg.Load.Duration, cfg.Load.Cooldown, cfg.Load.Rate = time.Second, 5*time.Second, time.Second, 50
			r := &run{opts: Options{Config: cfg, AttributeTo: 10}, log: slog.New(slog.DiscardHandler), report: &gate.Report{},
				res: Result{Profiles: map[string][]byte{}}}
			if err := r.readTargets(context.Background()); err != nil {
				t.Fatal(err)
			}
			src := probe.NewPprof(srv.URL+"/debug/pprof/", nil)
			if err := src.Detect(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, p, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
			port, _ := strconv.Atoi(p)
			start := time.Now()
			err := r.measure(context.Background(), src, srv.URL, port, nil)
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
			want := strings.ReplaceAll(tc.want, "{{port}}", p)
			if !errors.Is(err, gate.ErrTooLarge) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want gate.ErrTooLarge and %q", err, want)
			}
		})
	}
}
