package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/storage"
	"github.com/memgate/memgate/storage/storagetest"
)

// fixture is a real payload from testdata with edits applied.
func fixture(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "github-payloads", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func field(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

type answer struct {
	status  int
	Outcome string `json:"outcome"`
	RunID   int64  `json:"run_id"`
	Error   string `json:"error"`
}

// send posts a delivery signed with the test secret ("s"), or unsigned.
func send(t *testing.T, base, event, guid string, body []byte, signed bool) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/webhook", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", guid)
	if signed {
		req.Header.Set("X-Hub-Signature-256", sig(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	json.NewDecoder(resp.Body).Decode(&a)
	a.status = resp.StatusCode
	return a
}

func counts(t *testing.T, st *storage.Store) (runs, deliveries int64) {
	t.Helper()
	runs, err := st.CountRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err = st.CountDeliveries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return runs, deliveries
}

// Each class of bad or needless delivery gets its own status through the
// real server and store: 4xx for what no redelivery can fix, an idempotent
// 2xx for what already had its effect, and nothing half-stored.
func TestDeliveryErrorsMapToStatuses(t *testing.T) {
	b := setup(t)
	head := fmt.Sprintf("%040x", 7)
	noCloneURL := fixture(t, "pull_request.opened", func(m map[string]any) {
		delete(field(m, "repository"), "clone_url")
		field(m, "pull_request", "head")["sha"] = head
	})
	noPR := fixture(t, "pull_request.opened", func(m map[string]any) { delete(m, "pull_request") })
	for _, tc := range []struct {
		name, event string
		body        []byte
		signed      bool
		status      int
		outcome     string
	}{
		{"malformed JSON", "pull_request", []byte(`{"action": "opened",`), true, http.StatusBadRequest, ""},
		{"no pull_request in a pull_request event", "pull_request", noPR, true, http.StatusUnprocessableEntity, ""},
		{"no clone URL", "pull_request", noCloneURL, true, http.StatusUnprocessableEntity, ""},
		{"unsigned", "pull_request", prDelivery(t, head), false, http.StatusUnauthorized, ""},
	} {
		a := send(t, b.srv.URL, tc.event, "guid-"+tc.name, tc.body, tc.signed)
		if a.status != tc.status {
			t.Errorf("%s: %d (%s), want %d", tc.name, a.status, a.Error, tc.status)
		}
	}
	if runs, deliveries := counts(t, b.store); runs != 0 || deliveries != 0 {
		t.Fatalf("refused deliveries stored %d runs and %d deliveries", runs, deliveries)
	}

	// A delivery id already seen: the same answer class, nothing new.
	body := prDelivery(t, head)
	if a := send(t, b.srv.URL, "pull_request", "first", body, true); a.status != http.StatusAccepted || a.Outcome != outcomeQueued {
		t.Fatalf("first delivery: %+v", a)
	}
	if a := send(t, b.srv.URL, "pull_request", "first", body, true); a.status != http.StatusAccepted || a.Outcome != outcomeDuplicate {
		t.Fatalf("redelivery: %+v", a)
	}

	// A job the queue already holds (the runs table lost it, say): an
	// idempotent 200, no run without its job.
	other := fmt.Sprintf("%040x", 8)
	err := b.store.Tx(context.Background(), func(tx *sql.Tx) error {
		_, _, err := b.queue.EnqueueTx(context.Background(), tx, queue.GateArgs{RunID: 999, Repository: "Codertocat/Hello-World", PR: 2, HeadSHA: other})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := send(t, b.srv.URL, "pull_request", "dup-job", prDelivery(t, other), true); a.status != http.StatusOK || a.Outcome != outcomeDuplicateJob {
		t.Fatalf("duplicate job: %+v, want 200 %s", a, outcomeDuplicateJob)
	}
	if runs, _ := counts(t, b.store); runs != 1 {
		t.Fatalf("%d runs, want 1 (the duplicate job's run rolled back)", runs)
	}
}

// The database really unavailable: SQLite closed, SQLite locked by another
// writer past its busy timeout, and Postgres behind a proxy that is then
// cut off (connections refused). Each 503; /readyz too when it is gone.
func TestDatabaseUnavailableIs503(t *testing.T) {
	check := func(t *testing.T, b testBundle, cutOff func(), gone bool) {
		if a := send(t, b.srv.URL, "pull_request", "before", prDelivery(t, fmt.Sprintf("%040x", 1)), true); a.status != http.StatusAccepted {
			t.Fatalf("before: %+v", a)
		}
		cutOff()
		a := send(t, b.srv.URL, "pull_request", "after", prDelivery(t, fmt.Sprintf("%040x", 2)), true)
		if a.status != http.StatusServiceUnavailable || !strings.Contains(a.Error, "database is unavailable") {
			t.Fatalf("database gone: %+v, want 503", a)
		}
		if !gone {
			return // a lock is not an outage: /readyz's ping still reads
		}
		resp, err := http.Get(b.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("readyz %d with the database gone", resp.StatusCode)
		}
	}
	t.Run("sqlite-closed", func(t *testing.T) {
		b := setup(t)
		check(t, b, func() { b.store.Close() }, true)
	})
	t.Run("sqlite-locked-past-busy-timeout", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits out SQLite's 10 s busy timeout")
		}
		path := filepath.Join(t.TempDir(), "w.db")
		b := newTestServer(t, "sqlite:"+path, "s")
		check(t, b, func() {
			// Another process holds the write lock and does not let go.
			// It waits its turn for the lock: the server's own background
			// writers may hold it for a moment.
			other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			conn, err := other.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.ExecContext(context.Background(), "ROLLBACK"); conn.Close() })
			if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
		}, false)
	})
	t.Run("postgres-unreachable", func(t *testing.T) {
		base := os.Getenv("MEMGATE_TEST_DATABASE_URL")
		if base == "" {
			t.Skip("MEMGATE_TEST_DATABASE_URL is not set")
		}
		url, unplug := storagetest.Unpluggable(t, storagetest.Database(t, base))
		check(t, newTestServer(t, url, "s"), unplug, true)
	})
}

// A captured body sent again under a new delivery id gates nothing: a
// re-run request replayed does not run the gate again, and an old push
// replayed neither re-gates the old head nor cancels the new one.
func TestReplayedBodyUnderANewDeliveryIDGatesNothing(t *testing.T) {
	b := setup(t)
	rerun := fixture(t, "check_run.rerequested", func(m map[string]any) {
		cr := field(m, "check_run")
		cr["name"] = "memgate"
		// The re-run names its (same-repository) pull request: a re-run of
		// a commit of no known pull request is refused.
		repo := m["repository"].(map[string]any)
		ref := map[string]any{"id": repo["id"], "name": repo["name"], "url": repo["url"]}
		cr["pull_requests"] = []any{map[string]any{"number": 7,
			"head": map[string]any{"sha": cr["head_sha"], "ref": "feature", "repo": ref},
			"base": map[string]any{"sha": fmt.Sprintf("%040x", 9), "ref": "main", "repo": ref}}}
	})
	if a := send(t, b.srv.URL, "check_run", "rerun-1", rerun, true); a.status != http.StatusAccepted || a.Outcome != outcomeQueued {
		t.Fatalf("re-run: %+v", a)
	}
	if a := send(t, b.srv.URL, "check_run", "rerun-1-replayed", rerun, true); a.status != http.StatusOK || a.Outcome != outcomeReplayed {
		t.Fatalf("replayed re-run: %+v, want 200 %s", a, outcomeReplayed)
	}
	old, cur := prDelivery(t, fmt.Sprintf("%040x", 1)), prDelivery(t, fmt.Sprintf("%040x", 2))
	send(t, b.srv.URL, "pull_request", "push-1", old, true)
	send(t, b.srv.URL, "pull_request", "push-2", cur, true)
	if a := send(t, b.srv.URL, "pull_request", "push-1-replayed", old, true); a.status != http.StatusOK || a.Outcome != outcomeReplayed {
		t.Fatalf("replayed push: %+v", a)
	}
	active, err := b.store.Active(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var heads []string
	for _, r := range active {
		heads = append(heads, r.HeadSHA[len(r.HeadSHA)-1:])
	}
	if runs, deliveries := counts(t, b.store); runs != 3 || deliveries != 3 || len(active) != 2 {
		t.Fatalf("%d runs, %d deliveries, active heads %v: want 3 runs (re-run, two pushes), 3 deliveries, the re-run and the newest push active",
			runs, deliveries, heads)
	}
	// GitHub's own redelivery (same id) stays idempotent.
	if a := send(t, b.srv.URL, "pull_request", "push-2", cur, true); a.status != http.StatusAccepted || a.Outcome != outcomeDuplicate {
		t.Fatalf("redelivery: %+v", a)
	}
}

// Events older than the bound are refused (422: a clock or a capture, never
// GitHub); those within it are gated.
func TestStaleEventsAreRefused(t *testing.T) {
	b := newTestServerWith(t, "sqlite:"+filepath.Join(t.TempDir(), "w.db"), Config{WebhookSecret: "s", MaxEventAge: 96 * time.Hour})
	at := func(head string, when time.Time, layout string) []byte {
		return fixture(t, "pull_request.synchronize", func(m map[string]any) {
			pr := field(m, "pull_request")
			field(pr, "head")["sha"] = head
			pr["updated_at"] = when.UTC().Format(layout)
		})
	}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"five days old", at(fmt.Sprintf("%040x", 1), now.Add(-120*time.Hour), time.RFC3339), http.StatusUnprocessableEntity},
		{"five days old, GitHub's other format", at(fmt.Sprintf("%040x", 2), now.Add(-120*time.Hour), "2006-01-02 15:04:05"), http.StatusUnprocessableEntity},
		{"three days old (a redelivery by hand)", at(fmt.Sprintf("%040x", 3), now.Add(-72*time.Hour), time.RFC3339), http.StatusAccepted},
		{"just now", at(fmt.Sprintf("%040x", 4), now, time.RFC3339), http.StatusAccepted},
	} {
		if a := send(t, b.srv.URL, "pull_request", tc.name, tc.body, true); a.status != tc.status {
			t.Errorf("%s: %+v, want %d", tc.name, a, tc.status)
		}
	}
	if runs, _ := counts(t, b.store); runs != 2 {
		t.Fatalf("%d runs, want 2", runs)
	}
}

func sig(body []byte) string {
	mac := hmac.New(sha256.New, []byte("s"))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
