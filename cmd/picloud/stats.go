package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/picloud/picloud/internal/pgcluster"
	"github.com/picloud/picloud/internal/pgcount"
)

type statsCmd struct {
	Idle statsIdleCmd `cmd:"" help:"Measure the statements per minute idle nodes send to PostgreSQL, next to River's default client."`
}

type statsIdleCmd struct {
	DatabaseURL string        `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL server to measure on (a scratch database is created and dropped); without it, a private cluster in a temporary directory."`
	Duration    time.Duration `default:"60s" help:"How long to measure."`
	Warmup      time.Duration `default:"5s" help:"How long to let each node start before measuring."`
	Roles       []string      `default:"serve,worker,api,river" enum:"serve,worker,api,river" help:"Nodes to measure, at the same time, each on its own database: serve, worker, api, and river (River's default client with one queue, for comparison)."`
	Verbose     bool          `short:"v" help:"List the statements each node sent."`
	JSON        bool          `name:"json" help:"Print the results as JSON, every statement each node sent included, for programs such as picloud-bench."`
}

// idleResult is one role's measurement.
type idleResult struct {
	role       string
	total      int
	statements []pgcount.Statement
	err        error
}

func (c *statsIdleCmd) Run(ctx context.Context, logger *slog.Logger) error {
	admin, stop, err := statsServer(ctx, c.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer stop()
	results := make([]idleResult, len(c.Roles))
	var wg sync.WaitGroup
	for i, role := range c.Roles {
		wg.Go(func() {
			total, statements, err := measureIdle(ctx, admin, role, c.Warmup, c.Duration)
			results[i] = idleResult{role: role, total: total, statements: statements, err: err}
		})
	}
	wg.Wait()
	if c.JSON {
		return printIdleJSON(os.Stdout, results, c.Duration)
	}
	return printIdle(os.Stdout, results, c.Duration.Minutes(), c.Verbose)
}

// idleReport is what --json prints.
type idleReport struct {
	DurationSeconds float64    `json:"duration_s"`
	Nodes           []idleNode `json:"nodes"`
}

type idleNode struct {
	Role             string          `json:"role"`
	Statements       int             `json:"statements"`
	StatementsPerMin float64         `json:"statements_per_min"`
	ByStatement      []idleStatement `json:"by_statement,omitempty"`
	// Error is set when the node could not be measured; the command then
	// also exits non-zero, after printing the nodes that could.
	Error string `json:"error,omitempty"`
}

type idleStatement struct {
	SQL   string `json:"sql"`
	Count int    `json:"count"`
}

func printIdleJSON(w io.Writer, results []idleResult, duration time.Duration) error {
	rep := idleReport{DurationSeconds: duration.Seconds(), Nodes: make([]idleNode, 0, len(results))}
	var errs []error
	for _, r := range results {
		n := idleNode{Role: r.role}
		if r.err != nil {
			n.Error = r.err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", r.role, r.err))
		} else {
			n.Statements, n.StatementsPerMin = r.total, float64(r.total)/duration.Minutes()
			for _, st := range r.statements {
				n.ByStatement = append(n.ByStatement, idleStatement{SQL: st.SQL, Count: st.Count})
			}
		}
		rep.Nodes = append(rep.Nodes, n)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		errs = append(errs, fmt.Errorf("write the results: %w", err))
	}
	return errors.Join(errs...)
}

func printIdle(w io.Writer, results []idleResult, minutes float64, verbose bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tstatements/min\t")
	var errs []error
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\terror\t\n", r.role)
			errs = append(errs, fmt.Errorf("%s: %w", r.role, r.err))
			continue
		}
		fmt.Fprintf(tw, "%s\t%.1f\t\n", r.role, float64(r.total)/minutes)
	}
	_ = tw.Flush()
	if verbose {
		for _, r := range results {
			if r.err == nil {
				fmt.Fprintf(w, "\n%s: ", r.role)
				pgcount.Report(w, r.total, r.statements, minutes)
			}
		}
	}
	return errors.Join(errs...)
}

// statsServer returns an admin URL of the server to measure on: the given
// one, or a private cluster started for the measurement.
func statsServer(ctx context.Context, databaseURL string, logger *slog.Logger) (string, func(), error) {
	if databaseURL != "" {
		return databaseURL, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "picloud-stats-")
	if err != nil {
		return "", nil, err
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Ephemeral: true, Logger: logger})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return cluster.URL("postgres"), func() {
		_ = cluster.Stop(context.WithoutCancel(ctx))
		_ = os.RemoveAll(dir)
	}, nil
}

// measureIdle runs one node on a scratch database, through a counting
// proxy, and counts what it sends while idle.
func measureIdle(ctx context.Context, admin, role string, warmup, duration time.Duration) (int, []pgcount.Statement, error) {
	dbURL, drop, err := scratchDatabase(ctx, admin)
	if err != nil {
		return 0, nil, err
	}
	defer drop()
	proxy, proxied, err := countingProxy(dbURL)
	if err != nil {
		return 0, nil, err
	}
	defer proxy.Close()

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	quiet := slog.New(slog.DiscardHandler)
	go func() { done <- runIdleRole(runCtx, role, proxied, quiet) }()
	select {
	case err := <-done:
		cancel()
		return 0, nil, fmt.Errorf("the node stopped during warm-up: %w", err)
	case <-time.After(warmup):
	}
	proxy.Reset()
	select {
	case err := <-done:
		cancel()
		return 0, nil, fmt.Errorf("the node stopped: %w", err)
	case <-time.After(duration):
	}
	total, statements := proxy.Counts()
	cancel()
	if err := <-done; err != nil {
		return 0, nil, fmt.Errorf("stopping the node: %w", err)
	}
	return total, statements, nil
}

// runIdleRole runs a node until ctx ends. Lua runs in-process: sandbox
// processes never talk to the database.
func runIdleRole(ctx context.Context, role, databaseURL string, logger *slog.Logger) error {
	work := &workerFlags{Sandbox: "inprocess"}
	web := &apiFlags{Addr: "127.0.0.1:0"}
	flags := nodeFlags{DrainTimeout: 5 * time.Second, Migrate: true}
	var err error
	switch role {
	case "serve":
		err = node{api: web, worker: work, nodeFlags: flags}.run(ctx, logger, databaseURL, nil)
	case "worker":
		err = node{worker: work, nodeFlags: flags}.run(ctx, logger, databaseURL, nil)
	case "api":
		err = node{api: web, nodeFlags: flags}.run(ctx, logger, databaseURL, nil)
	case "river":
		err = runDefaultRiver(ctx, databaseURL)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type idleArgs struct{}

func (idleArgs) Kind() string { return "idle" }

type idleWorker struct{ river.WorkerDefaults[idleArgs] }

func (idleWorker) Work(context.Context, *river.Job[idleArgs]) error { return nil }

// runDefaultRiver runs River's client as its documentation sets it up:
// default configuration, one queue, one worker.
func runDefaultRiver(ctx context.Context, databaseURL string) error {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, idleWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers: workers,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return client.Stop(stopCtx)
}

// scratchDatabase creates a database for one measurement and returns its
// URL and a function that drops it.
func scratchDatabase(ctx context.Context, admin string) (string, func(), error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "picloud_stats_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create scratch database: %w", err)
	}
	config, err := pgx.ParseConfig(admin)
	if err != nil {
		return "", nil, err
	}
	config.Database = name
	drop := func() {
		ctx := context.WithoutCancel(ctx)
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = conn.Close(ctx)
		}
	}
	return connString(config.Config), drop, nil
}

// countingProxy starts a counting proxy in front of the server of
// databaseURL and returns the URL to reach the same database through it.
func countingProxy(databaseURL string) (*pgcount.Proxy, string, error) {
	config, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return nil, "", err
	}
	network, address := "tcp", net.JoinHostPort(config.Host, strconv.Itoa(int(config.Port)))
	if strings.HasPrefix(config.Host, "/") {
		network, address = "unix", filepath.Join(config.Host, fmt.Sprintf(".s.PGSQL.%d", config.Port))
	}
	proxy, err := pgcount.Start(network, address)
	if err != nil {
		return nil, "", err
	}
	config.Host, config.Port = "127.0.0.1", 0
	u := url.URL{Scheme: "postgres", Host: proxy.Addr(), Path: "/" + config.Database, RawQuery: "sslmode=disable"}
	if config.Password != "" {
		u.User = url.UserPassword(config.User, config.Password)
	} else {
		u.User = url.User(config.User)
	}
	return proxy, u.String(), nil
}

// connString turns a parsed configuration back into a URL.
func connString(c pgconn.Config) string {
	u := url.URL{Scheme: "postgres", Path: "/" + c.Database}
	if c.Password != "" {
		u.User = url.UserPassword(c.User, c.Password)
	} else {
		u.User = url.User(c.User)
	}
	q := url.Values{}
	if strings.HasPrefix(c.Host, "/") {
		q.Set("host", c.Host)
		q.Set("port", strconv.Itoa(int(c.Port)))
	} else {
		u.Host = net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	if c.TLSConfig == nil {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}
