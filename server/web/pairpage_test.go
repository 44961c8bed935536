package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/storage"
)

// hostile is text a repository controls (its service's output ends up in
// reasons and details) made to break out of the page.
const hostile = `<script>alert("base")</script><img src=x onerror=alert(1)>`

// seedPair stores a pull request's run gated beside its base, as the
// runner does: the base measured by the run itself and kept, the head
// failing where the base passes, one confirmation, and an acceptance. It
// returns the run's id.
func (b *testBundle) seedPair(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	run := gate.Run{Repository: "acme/orders-service", PR: 15, HeadSHA: "c0ffee0000000000000000000000000000000000", BaseSHA: "1111111111111111111111111111111111111111",
		BaseRef: "main", CloneURL: "https://github.com/acme/orders-service.git", Trigger: "pull_request.opened", CreatedAt: fixedNow.Add(-time.Hour)}
	id, err := b.store.CreateRun(ctx, nil, run)
	if err != nil {
		t.Fatal(err)
	}
	b.store.MarkRunning(ctx, id, fixedNow.Add(-time.Hour))
	base, head := loadReport(t, "report-healthy.json"), loadReport(t, "report-goroutine-leak.json")
	base.Reason = hostile
	claim, err := b.store.ClaimBase(ctx, storage.BaseKey{Repository: run.Repository, BaseSHA: run.BaseSHA, ConfigHash: "c"}, id, time.Minute, 0)
	if err != nil || !claim.Mine {
		t.Fatalf("claim base: %+v %v", claim, err)
	}
	if ok, err := b.store.FinishBase(ctx, claim.ID, id, base); !ok || err != nil {
		t.Fatalf("keep base: %v %v", ok, err)
	}
	cmp := &gate.Comparison{Verdict: gate.Fail, Outcome: gate.OutcomeIntroduced, Headline: "goroutines grow: +41.2 /1k req over the base",
		Base: gate.RunRef{SHA: run.BaseSHA, Verdict: base.Verdict, Reason: base.Reason, Report: base},
		Head: gate.RunRef{SHA: run.HeadSHA, Verdict: head.Verdict, Reason: head.Reason, Report: head},
		Rows: []gate.ComparisonRow{{Criterion: gate.CmpGoroutineGrowth, Base: 0.2, Head: 41.4, Limit: 2, Unit: "goroutines/1k requests",
			Status: gate.StatusFail, Detail: hostile}},
		Confirmations: []gate.RunRef{{SHA: run.HeadSHA, Verdict: gate.Fail, Reason: "confirmed: goroutines grow"}},
		Limits:        gate.DefaultCompareLimits()}
	if ok, err := b.store.CompletePair(ctx, id, 0, cmp, claim.ID, nil); !ok || err != nil {
		t.Fatalf("complete pair: %v %v", ok, err)
	}
	if _, err := b.store.Accept(ctx, nil, storage.Acceptance{Repository: run.Repository, PR: run.PR, HeadSHA: run.HeadSHA, BaseSHA: run.BaseSHA, RunID: id,
		By: `octo"cat<b>`, At: fixedNow.Add(-10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	return id
}

// A compared run's page shows base and head side by side (the verdict,
// the comparison, the criteria in two columns, one chart for both runs),
// its confirmation and its acceptance, with whatever the repository wrote
// escaped; the repository's page counts the acceptance.
func TestRunPageShowsTheBaseBesideTheHead(t *testing.T) {
	b := setup(t, true)
	id := b.seedPair(t)
	status, body, _ := b.get(t, fmt.Sprintf("/runs/%d", id))
	if status != http.StatusOK {
		t.Fatalf("run page: %d", status)
	}
	for _, want := range []string{`id="against-base"`, `id="pair-verdict">fail</span>`, "introduced", "goroutines grow: &#43;41.2 /1k req over the base",
		`id="comparison"`, "goroutine_growth_vs_base", "0.20 /1k req", "41.40 /1k req", `id="criteria-pair"`,
		"Heap after GC: base and head", `data-series="base post-GC heap"`, `data-series="head post-GC heap"`,
		`data-series="base goroutines"`, `data-series="head goroutines"`,
		`id="confirmation-1"`, "confirmed: goroutines grow", `<a href="#head">first run</a>`, `id="head"`,
		`id="accepted"`, "@octo&#34;cat&lt;b&gt;", "for commit <span class=\"mono\">c0ffee0</span> only"} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || strings.Contains(body, "<b>") {
		t.Error("the repository's text reached the page unescaped")
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;base&#34;)&lt;/script&gt;") {
		t.Error("the base's reason is not shown, escaped")
	}
	// The criteria in two columns: a row with the base's and the head's
	// values of one criterion.
	row := body[strings.Index(body, `id="criteria-pair"`):]
	row = row[strings.Index(row, "<td>goroutine_growth</td>"):]
	row = row[:strings.Index(row, "</tr>")]
	if strings.Count(row, "badge v-") != 2 || !strings.Contains(row, "v-pass") || !strings.Contains(row, "v-fail") {
		t.Errorf("goroutine growth, base and head: %s", row)
	}
	_, repo, _ := b.get(t, "/repos/acme/orders-service")
	if !strings.Contains(repo, `<strong id="accepted-count">1</strong>`) || !strings.Contains(repo, fmt.Sprintf(`<a href="/runs/%d">run %d</a> #15`, id, id)) {
		t.Error("the repository's page does not show the acceptance")
	}
	// A head-only run has no comparison section.
	if _, body, _ := b.get(t, fmt.Sprintf("/runs/%d", b.ids["fail"])); strings.Contains(body, "against-base") {
		t.Error("a run gated alone shows a comparison")
	}
}
