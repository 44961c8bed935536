package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/memgate/memgate/storage/storagetest"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testlock"
)

// BenchmarkWebhookIntake measures deliveries per second and the latency to
// the 202 for signed pull_request deliveries, each recorded with its run and
// queue job in one SQLite transaction. Every delivery is a new head, so each
// one enqueues a gate (no worker runs them).
//
//	go test ./server -run '^$' -bench WebhookIntake -benchtime 2000x
func BenchmarkWebhookIntake(b *testing.B) {
	testlock.Gate(b) // no gate (or other benchmark) shares the machine meanwhile
	b.Run("sqlite", func(b *testing.B) { benchIntake(b, "sqlite:"+filepath.Join(b.TempDir(), "bench.db")) })
	b.Run("postgres", func(b *testing.B) {
		base := os.Getenv("MEMGATE_TEST_DATABASE_URL")
		if base == "" {
			b.Skip("MEMGATE_TEST_DATABASE_URL is not set")
		}
		benchIntake(b, storagetest.Database(b, base))
	})
}

func benchIntake(b *testing.B, url string) {
	ctx := context.Background()
	const secret = "bench-secret"
	tb := newTestServer(b, url, secret)
	st, srv := tb.store, tb.srv

	raw, err := os.ReadFile(filepath.Join("testdata", "github-payloads", "pull_request.synchronize.json"))
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(4) // 4 x GOMAXPROCS concurrent senders, as a busy organisation
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var tmpl map[string]any // each sender edits its own copy
		json.Unmarshal(raw, &tmpl)
		var mine []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			body := delivery(tmpl, n)
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook", bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "pull_request")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", n))
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			mine = append(mine, time.Since(t0))
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	if n, _ := st.CountRuns(ctx); n != int64(len(lat)) {
		b.Errorf("%d runs stored for %d deliveries", n, len(lat))
	}
}

func delivery(tmpl map[string]any, n int64) []byte {
	head := fmt.Sprintf("%040x", n)
	pr := tmpl["pull_request"].(map[string]any)
	pr["head"].(map[string]any)["sha"] = head
	pr["number"] = int(n%500) + 1
	body, _ := json.Marshal(tmpl)
	return body
}
