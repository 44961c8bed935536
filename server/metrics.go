package server

import (
	"context"
	"database/sql"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/storage"
)

// DepthReader reads the queue's depth at scrape time.
type DepthReader interface {
	Depth(ctx context.Context, db *sql.DB) (waiting, running int64, err error)
}

// Metrics are memgate's Prometheus metrics.
type Metrics struct {
	reg        *prometheus.Registry
	deliveries *prometheus.CounterVec
	durations  *prometheus.HistogramVec
	db         *dbCollector
}

// NewMetrics registers the metrics.
func NewMetrics(store *storage.Store) *Metrics {
	m := &Metrics{
		db:  &dbCollector{store: store},
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memgate_webhook_deliveries_total", Help: "Webhook deliveries by outcome.",
		}, []string{"outcome"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "memgate_gate_duration_seconds", Help: "Gate run durations by verdict.",
			Buckets: []float64{5, 15, 30, 45, 60, 90, 120, 180, 300, 600, 1200},
		}, []string{"verdict"}),
	}
	m.reg.MustRegister(m.deliveries, m.durations, m.db,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// SetQueue adds the queue's depth to the metrics.
func (m *Metrics) SetQueue(q DepthReader) {
	m.db.mu.Lock()
	m.db.queue = q
	m.db.mu.Unlock()
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) delivery(outcome string) { m.deliveries.WithLabelValues(outcome).Inc() }

// ObserveGate records a finished gate's duration.
func (m *Metrics) ObserveGate(rep *gate.Report) {
	m.durations.WithLabelValues(string(rep.Verdict)).Observe(rep.Timings.Total.Std().Seconds())
}

// dbCollector reads counts from the database at scrape time, so they are
// right whichever process ran the gates.
type dbCollector struct {
	store *storage.Store
	mu    sync.Mutex
	queue DepthReader
}

var (
	runsDesc  = prometheus.NewDesc("memgate_runs", "Completed gate runs by verdict.", []string{"verdict"}, nil)
	queueDesc = prometheus.NewDesc("memgate_queue_jobs", "Gate jobs in the queue by state.", []string{"state"}, nil)
	upDesc    = prometheus.NewDesc("memgate_database_up", "Whether the database answered the last scrape.", nil, nil)
)

func (d *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runsDesc
	ch <- queueDesc
	ch <- upDesc
}

func (d *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := d.store.CountByVerdict(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	for _, v := range []gate.Verdict{gate.Pass, gate.Fail, gate.Error, gate.Inconclusive} {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[v]), string(v))
	}
	d.mu.Lock()
	q := d.queue
	d.mu.Unlock()
	if q != nil {
		if waiting, running, err := q.Depth(ctx, d.store.DB()); err == nil {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(waiting), "waiting")
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(running), "running")
		}
	}
}
