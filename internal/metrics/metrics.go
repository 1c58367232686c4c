// Package metrics is a node's Prometheus registry: what its workers ran,
// the queue, the executor, the database pool and the Go runtime, served as
// /metrics in the text exposition format.
//
// Nothing here runs on a timer. Counters and histograms are updated on the
// invocation path (Metrics implements queue.Observer); gauges are read when
// scraped, and only the queue depth costs a query, once per scrape.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/picloud/picloud/internal/version"
	"github.com/picloud/picloud/queue"
)

// depthTimeout bounds the queue depth query of a scrape; Prometheus's own
// scrape timeout is 10 s by default.
const depthTimeout = 5 * time.Second

// Metrics holds one node's metrics. Each node (and each test) makes its
// own: there is no global registry.
type Metrics struct {
	registry    *prometheus.Registry
	logger      *slog.Logger
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	queued      *prometheus.HistogramVec
	limitHits   *prometheus.CounterVec
	reconnects  prometheus.Counter
}

// New returns a registry with the invocation metrics and the Go runtime
// and process collectors. Watch* add the node's other parts.
func New(logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.Default()
	}
	// Runs take from under a millisecond (a small handler in process) to
	// the 15-minute maximum timeout; queue waits from a millisecond to
	// however long a backlog lasts.
	runBuckets := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	waitBuckets := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		logger:   logger,
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "picloud_invocations_total",
			Help: "Invocations that reached a final status on this node, by function, status (succeeded, failed, timed_out, cancelled) and trigger (http, api, sql, schedule, function). An invocation is counted once, by the worker that ran its last attempt.",
		}, []string{"function", "status", "trigger"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "picloud_invocation_duration_seconds",
			Help:    "Run time of each attempt this node ran (compile and run in the sandbox, without queueing), by function.",
			Buckets: runBuckets,
		}, []string{"function"}),
		queued: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "picloud_invocation_queue_seconds",
			Help:    "Time each attempt this node started spent queued: from its creation, or its due time for run_at and retries, to its start, by function.",
			Buckets: waitBuckets,
		}, []string{"function"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "picloud_sandbox_limit_hits_total",
			Help: "Attempts stopped by a sandbox limit on this node, by function and limit (timeout, memory, instructions).",
		}, []string{"function", "limit"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "picloud_listener_reconnects_total",
			Help: "Times this node's LISTEN connection (picloud_finished and the other PiCloud channels) was re-established after the first connect.",
		}),
	}
	// The usual build_info gauge: constant 1, the build in its labels, so a
	// query can join any series with the version that produced it.
	build := version.Get()
	buildInfo := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "picloud_build_info",
		Help: "Always 1; the labels say which build of PiCloud this node runs: version, commit (empty when unknown) and go_version.",
		ConstLabels: prometheus.Labels{
			"version": build.Version, "commit": build.Commit, "go_version": build.GoVersion,
		},
	}, func() float64 { return 1 })
	m.registry.MustRegister(
		m.invocations, m.duration, m.queued, m.limitHits, m.reconnects, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Registry is the underlying registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// AttemptStarted implements queue.Observer.
func (m *Metrics) AttemptStarted(function string, queued time.Duration) {
	m.queued.WithLabelValues(function).Observe(queued.Seconds())
}

// AttemptRan implements queue.Observer.
func (m *Metrics) AttemptRan(function string, run time.Duration, limit string) {
	m.duration.WithLabelValues(function).Observe(run.Seconds())
	if limit != "" {
		m.limitHits.WithLabelValues(function, limit).Inc()
	}
}

// InvocationFinished implements queue.Observer.
func (m *Metrics) InvocationFinished(function, trigger, status string) {
	m.invocations.WithLabelValues(function, status, trigger).Inc()
}

// ListenerReconnected implements queue.Observer.
func (m *Metrics) ListenerReconnected() { m.reconnects.Inc() }

// Usage is what an executor reports of its sandboxes; executor.Pool and
// executor.Sandboxes implement it.
type Usage interface {
	Usage() (busy, capacity int)
}

// Running counts the invocations a node runs now: *queue.Client.
type Running interface {
	Running() int
}

// Depth counts the queued invocations: *queue.Client.
type Depth interface {
	QueueDepth(ctx context.Context) (queue.Depth, error)
}

// WatchWorker adds the gauges of a node that runs invocations: how many run
// now, and how full the executor is.
func (m *Metrics) WatchWorker(q Running, executor Usage) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "picloud_invocations_running",
			Help: "Invocations running on this node now.",
		}, func() float64 { return float64(q.Running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "picloud_executor_busy",
			Help: "Sandboxes (Lua states or sandbox processes) of this node running an invocation now.",
		}, func() float64 { busy, _ := executor.Usage(); return float64(busy) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "picloud_executor_capacity",
			Help: "Sandboxes this node has (--concurrency): the most invocations it runs at once.",
		}, func() float64 { _, capacity := executor.Usage(); return float64(capacity) }),
	)
}

// WatchQueue adds the queue depth, counted by a query at each scrape.
func (m *Metrics) WatchQueue(q Depth) {
	m.registry.MustRegister(&depthCollector{q: q, logger: m.logger, desc: prometheus.NewDesc(
		"picloud_invocations_queued",
		"Queued invocations in the whole database (the same on every node), by what they wait for: a worker (due), their time (scheduled: run_at or a retry's backoff), or their function's max_concurrency (parked). Counted by a query at each scrape.",
		[]string{"state"}, nil,
	)})
}

type depthCollector struct {
	q      Depth
	logger *slog.Logger
	desc   *prometheus.Desc
}

func (c *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *depthCollector) Collect(ch chan<- prometheus.Metric) {
	// The collector interface passes no context: bound the query itself.
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	d, err := c.q.QueueDepth(ctx)
	if err != nil {
		// Leave the gauge out of this scrape rather than fail the others:
		// the pool and process metrics matter most when the database is
		// unwell.
		c.logger.WarnContext(ctx, "metrics: queue depth", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(d.Due), "due")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(d.Scheduled), "scheduled")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(d.Parked), "parked")
}

// WatchPool adds the database pool's statistics.
func (m *Metrics) WatchPool(pool *pgxpool.Pool) {
	m.registry.MustRegister(newPoolCollector(pool))
}

type poolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, constructing, total, max *prometheus.Desc
	acquires, acquireSeconds, emptyAcquires  *prometheus.Desc
	canceledAcquires                         *prometheus.Desc
}

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("picloud_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:             pool,
		acquired:         desc("acquired_connections", "Connections of this node's PostgreSQL pool in use now."),
		idle:             desc("idle_connections", "Idle connections of the pool."),
		constructing:     desc("constructing_connections", "Connections of the pool being opened now."),
		total:            desc("connections", "Connections of the pool: acquired, idle and being opened."),
		max:              desc("max_connections", "Most connections the pool may hold (LISTEN connections are outside it)."),
		acquires:         desc("acquires_total", "Connections acquired from the pool."),
		acquireSeconds:   desc("acquire_seconds_total", "Time spent acquiring connections from the pool, in seconds; divide its rate by acquires_total's for the mean wait."),
		emptyAcquires:    desc("empty_acquires_total", "Acquires that found no idle connection and waited for one to be opened or released: the pool is too small when this grows."),
		canceledAcquires: desc("canceled_acquires_total", "Acquires abandoned because their context ended first."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.constructing, c.total, c.max, c.acquires, c.acquireSeconds, c.emptyAcquires, c.canceledAcquires} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.constructing, float64(s.ConstructingConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.acquireSeconds, s.AcquireDuration().Seconds())
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceledAcquires, float64(s.CanceledAcquireCount()))
}
