package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/storage"
)

type testBundle struct {
	store *storage.Store
	queue *queue.Queue
	srv   *httptest.Server
	s     *Server
}

func setup(t *testing.T) testBundle {
	t.Helper()
	return newTestServer(t, "sqlite:"+filepath.Join(t.TempDir(), "w.db"), "s")
}

// newTestServer is a real server on a loopback port over the database url
// (either engine), with an insert-only queue and no GitHub.
func newTestServer(tb testing.TB, url, secret string) testBundle {
	tb.Helper()
	return newTestServerWith(tb, url, Config{WebhookSecret: secret})
}

// newTestServerWith is newTestServer with a configuration of its own.
func newTestServerWith(tb testing.TB, url string, scfg Config) testBundle {
	tb.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	pg := st.Engine() == storage.Postgres
	if err := queue.Migrate(ctx, st.DB(), pg); err != nil {
		tb.Fatal(err)
	}
	cfg := queue.DefaultConfig()
	cfg.Workers, cfg.Postgres = 0, pg
	q, err := queue.New(st.DB(), nil, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(ctx, scfg, st, q, checks.Silent{}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	tb.Cleanup(srv.Close)
	return testBundle{store: st, queue: q, srv: srv, s: s}
}

func prDelivery(t *testing.T, head string) []byte {
	raw, err := os.ReadFile(filepath.Join("testdata", "github-payloads", "pull_request.opened.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	m["pull_request"].(map[string]any)["head"].(map[string]any)["sha"] = head
	b, _ := json.Marshal(m)
	return b
}

func post(t *testing.T, url, guid string, body []byte) int {
	mac := hmac.New(sha256.New, []byte("s"))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, url+"/webhook", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "pull_request")
	req.Header.Set("X-GitHub-Delivery", guid)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The same delivery ten times at once (GitHub's redelivery racing a retry):
// one run, one job.
func TestConcurrentRedeliveriesGateOnce(t *testing.T) {
	b := setup(t)
	body := prDelivery(t, fmt.Sprintf("%040x", 1))
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = post(t, b.srv.URL, "same-guid", body)
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusAccepted {
			t.Errorf("delivery %d: %d", i, c)
		}
	}
	if n, _ := b.store.CountRuns(context.Background()); n != 1 {
		t.Fatalf("%d runs for one delivery sent ten times", n)
	}
	var jobs int
	b.store.DB().QueryRow(`SELECT COUNT(*) FROM river_job`).Scan(&jobs)
	if jobs != 1 {
		t.Fatalf("%d jobs", jobs)
	}
}

// A burst of pushes to one PR: only the newest head stays queued.
func TestBurstOfPushesKeepsOnlyTheNewestHead(t *testing.T) {
	b := setup(t)
	for i := 1; i <= 8; i++ {
		if c := post(t, b.srv.URL, fmt.Sprintf("push-%d", i), prDelivery(t, fmt.Sprintf("%040x", i))); c != http.StatusAccepted {
			t.Fatalf("push %d: %d", i, c)
		}
	}
	active, err := b.store.Active(context.Background())
	if err != nil || len(active) != 1 || active[0].HeadSHA != fmt.Sprintf("%040x", 8) {
		t.Fatalf("active runs %+v (%v)", active, err)
	}
	runs, _, _ := b.store.ListRuns(context.Background(), storage.Filter{Status: gate.RunCancelled})
	if len(runs) != 7 {
		t.Fatalf("%d cancelled runs, want 7", len(runs))
	}
}
