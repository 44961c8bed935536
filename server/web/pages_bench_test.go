package web

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testlock"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/storage"
)

// BenchmarkPages100k serves the history pages from a SQLite store holding
// 100,000 runs over 200 repositories (each run with its headline numbers;
// 2,000 with a full report of a real gate) and reports p50 and p95 per page.
//
//	go test ./server/web -run '^$' -bench Pages100k -benchtime 400x
func BenchmarkPages100k(b *testing.B) {
	testlock.Gate(b) // no gate (or other benchmark) shares the machine meanwhile
	const runs, withReport, repos = 100_000, 2_000, 200
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "pages.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	var rep gate.Report
	raw, err := os.ReadFile(filepath.Join("testdata", "report-goroutine-leak.json"))
	if err != nil {
		b.Fatal(err)
	}
	json.Unmarshal(raw, &rep)
	reportJSON, _ := json.Marshal(&rep)

	start := time.Now()
	err = st.Tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO runs (repository, pr_number, head_sha, clone_url, trigger, status, verdict,
			reason, heap_fluctuation, heap_growth, goroutine_growth, report, created_at, started_at, finished_at)
			VALUES (?, ?, ?, ?, 'pull_request.synchronize', 'completed', ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; i < runs; i++ {
			verdict, reason := "pass", "no leak"
			if i%7 == 0 {
				verdict, reason = "fail", rep.Reason
			}
			var report any
			if i >= runs-withReport {
				report = string(reportJSON)
			}
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			if _, err := ins.ExecContext(ctx, fmt.Sprintf("org-%d/service-%d", i%repos, i%repos), 1+i%900, fmt.Sprintf("%040x", i),
				"https://github.com/x/y.git", verdict, reason, 0.02+float64(i%13)/100, float64(i%50), float64(i%3)/10, report,
				at.UnixMilli(), at.Add(time.Second).UnixMilli(), at.Add(62*time.Second).UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d runs in %v", runs, time.Since(start).Round(time.Millisecond))

	// A quarter of the repositories are private; the pages are read as
	// nobody, so every list filters them out in its query.
	for i := 0; i < repos; i++ {
		if err := st.SetVisibility(ctx, nil, fmt.Sprintf("org-%d/service-%d", i, i), i%4 == 3); err != nil {
			b.Fatal(err)
		}
	}
	auth, err := access.New(access.Config{}, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{}, auth, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	p.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, page := range []struct{ name, path string }{
		{"list", "/"},
		{"list-repository", "/?repository=org-17/service-17"},
		{"list-verdict", "/?verdict=fail"},
		{"list-repository-pr", "/?repository=org-17/service-17&pr=217"},
		{"list-deep-page", fmt.Sprintf("/?cursor=%d", runs/2)},
		{"run", fmt.Sprintf("/runs/%d", runs-10)},
		{"repository", "/repos/org-17/service-17"},
		{"badge", "/badge/org-17/service-17.svg"},
	} {
		b.Run(page.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				resp, err := http.Get(srv.URL + page.path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", page.path, resp.StatusCode)
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
