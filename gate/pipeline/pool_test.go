package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
)

// A service's own pool of idle client connections to its upstream that
// widens during the window does not settle in the cooldown, like a client
// leaked every few hundred requests; a second burst tells them apart: the
// pool is reused and passes, the leak grows again and fails, named as
// leaked connections.
func TestClientPoolPassesSlowClientLeakFails(t *testing.T) {
	for _, tc := range []struct {
		client  string
		verdict gate.Verdict
		detail  string
	}{
		{"pool-widens", gate.Pass, "are left out: a pool, since a second burst of"},
		{"new-every-400", gate.Fail, "are not a pool: a second burst of 2400 requests left"},
	} {
		t.Run(tc.client, func(t *testing.T) {
			cfg, err := config.Parse(fmt.Appendf(nil, `
load: {warmup: 3s, duration: 12s, cooldown: 5s}
dependencies:
  pricing:
    package: ./upstream
    readiness: {http: /healthz}
run:
  env:
    CLIENT: %s
    UPSTREAM: "{{dep.pricing.addr}}"
`, tc.client))
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			res, _ := gateRunWith(t, context.Background(), filepath.Join("testdata", "upstream-clients"), cfg, rec)
			r := res.Report
			want(t, r, tc.verdict)
			settle := criterion(t, r, gate.CritGoroutineSettle)
			p := r.Settle.Pool
			if p == nil || !strings.Contains(settle.Detail, tc.detail) || !strings.Contains(strings.Join(rec.phases, " "), "settle pool") {
				logReport(t, r)
				t.Fatalf("pool check %+v, phases %v: want a second burst, and %q in goroutine_settle", p, rec.phases, tc.detail)
			}
			t.Logf("pool check %+v: %s", *p, settle.Detail)
			if p.Connections < 3 || p.Goroutines != 2*p.Connections || p.Burst.Requests < p.WindowRequests*9/10 {
				t.Errorf("pool check %+v", p)
			}
			if tc.verdict == gate.Fail && !strings.Contains(r.Reason, "HTTP client connections leaked") {
				t.Errorf("reason %q", r.Reason)
			}
		})
	}
}
