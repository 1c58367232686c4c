package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/picloud/picloud/events"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/db"
	"github.com/picloud/picloud/keys"
)

// DefaultInFlightPerSlot is how many invocations a worker may have started
// per run slot when Config.InFlight is not set. River alone burns down
// no-op jobs fastest with hundreds of workers per node (its producer hands
// each fetch to that many goroutines); here a fetch becomes one start
// statement and, as the runs end, a few finish statements.
//
// 256 burned down no-op invocations 10 to 28% faster than 64 (picloud-bench
// --quick, interleaved runs: 3,973 and 4,584/s against 3,641 and 3,578 with
// sandboxes). But a started invocation that waits too long for a slot is
// handed back, and with slow functions and a deep backlog a larger
// in-flight count hands back (and starts again) more of them for nothing;
// 64 keeps that churn small until the in-flight count adapts to the run
// rate.
const DefaultInFlightPerSlot = 64

// sandboxDepth is how many attempts a node runs or has waiting in the
// executor per run slot (see Client.sandboxes).
const sandboxDepth = 4

// Executor runs one invocation of a function. executor.Pool implements it.
type Executor interface {
	Run(ctx context.Context, fn executor.Function, req executor.Request, limits executor.Limits) executor.Result
}

// Config configures a Client.
type Config struct {
	// Executor runs invocations. Without one, the client only enqueues and
	// waits for results that other processes produce (the api role).
	Executor Executor
	// Concurrency is how many invocations the client runs at once; it
	// defaults to GOMAXPROCS. It should not exceed the executor's capacity.
	Concurrency int
	// InFlight is how many invocations the client may have started at
	// once, running or waiting for one of the Concurrency run slots: River
	// hands a worker up to this many jobs in one fetch, and they are started
	// and finished in batches. It defaults to DefaultInFlightPerSlot times
	// Concurrency.
	InFlight int
	Logger   *slog.Logger
	// HTTP bounds the outbound requests scripts make (http.request).
	HTTP hostapi.HTTPConfig
	// ID names this node in River's job rows (attempted_by); River picks
	// one from the host name and the time when empty.
	ID string
	// Observer hears about attempts and reconnects, for metrics; nil
	// hears nothing.
	Observer Observer
	// TracerProvider makes the spans of enqueues, attempts and runs; nil
	// makes none (OpenTelemetry's no-op tracer, which still carries a
	// caller's trace context into the invocation row).
	TracerProvider trace.TracerProvider
}

// Client is PiCloud's handle on the database: it stores functions, enqueues
// invocations, waits for their results and, given an Executor, runs them.
type Client struct {
	pool     *pgxpool.Pool
	queries  *db.Queries
	config   Config
	logger   *slog.Logger
	tracer   trace.Tracer
	finished *finishHub
	timers   *timers
	running  runningSet
	// river fetches the invocations this node runs (river.go); nil
	// without an Executor.
	river  *riverClient
	keys   *keys.Store
	events *events.Hub[Event]
	// redactors keeps each function's secret masking between attempts.
	redactors hostapi.RedactorCache

	// worker runs attempts, fetched by River or started here (runhere.go).
	worker *invocationWorker
	// sandboxes holds one token per attempt this node runs: Concurrency
	// runs, plus three times as many waiting in the executor's pipes, so
	// that a sandbox finds its next runs there when one ends. Attempts
	// beyond that wait for a token (waitForSandbox), where a wait too long
	// is handed back; a call runs here only when a token is free at once.
	//
	// The depth is a trade: measured on the burn-down (picloud-bench
	// --quick, one run each), 2,880 invocations/s with one run waiting per
	// sandbox and 3,780/s with seven. But a run waiting inside the
	// executor is out of waitForSandbox's sight: behind a run that turns
	// slow it may wait past its rescue deadline, and be run twice (the
	// second outcome is fenced off). The executor does not queue behind a
	// run already slow; three waiting per sandbox keeps the rest small.
	sandboxes chan struct{}
	here      hereRuns
	// starter and finisher batch the starts and the outcomes of attempts
	// (start.go, finish.go).
	starter  *groupCommit[int64, *db.StartInvocationsRow]
	finisher *groupCommit[finishItem, finishOutcome]

	// finishedListened is set once the listener first connected; a
	// later connect is a reconnect.
	finishedListened atomic.Bool

	mu         sync.Mutex
	stopListen context.CancelFunc
	listenDone chan struct{}
}

// NewClient returns a client on pool. Call Start before invoking functions.
func NewClient(pool *pgxpool.Pool, config Config) (*Client, error) {
	if config.Concurrency <= 0 {
		config.Concurrency = runtime.GOMAXPROCS(0)
	}
	if config.InFlight <= 0 {
		config.InFlight = DefaultInFlightPerSlot * config.Concurrency
	}
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	if config.Observer == nil {
		config.Observer = noObserver{}
	}
	if config.TracerProvider == nil {
		config.TracerProvider = noop.NewTracerProvider()
	}
	queries := db.New(pool)
	c := &Client{
		pool:      pool,
		queries:   queries,
		keys:      keys.New(queries),
		config:    config,
		logger:    config.Logger,
		finished:  newFinishHub(),
		timers:    newTimers(),
		tracer:    config.TracerProvider.Tracer(tracerName),
		sandboxes: make(chan struct{}, sandboxDepth*config.Concurrency),
	}
	c.events = c.newEventHub()
	c.starter = c.newStarter()
	c.finisher = c.newFinisher()
	if config.Executor != nil {
		c.worker = &invocationWorker{client: c}
		rc, err := c.newRiverClient()
		if err != nil {
			return nil, err
		}
		c.river = rc
	}
	return c, nil
}

// Keys creates, lists, revokes and checks API keys. Its cache is cleared
// by this client's listener when a key is revoked on any node.
func (c *Client) Keys() *keys.Store { return c.keys }

// Start begins listening for finished invocations and, with an Executor,
// working on queued ones. It returns once the listener is in place, so an
// invocation made after Start returns cannot finish unnoticed.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopListen != nil {
		return errors.New("queue client already started")
	}
	listenCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	reconnect := &reconnecter{
		logger: c.logger,
		// The LISTEN connection dropping means, most of the time, that
		// the database restarted or the network broke, and then the
		// pool's idle connections are dead too. pgxpool pings only those
		// idle for over a second before handing them out, so the
		// catch-up that follows a reconnect (River's fetch, waiters
		// re-reading their rows) could take a dead one, fail, and be
		// lost until the next wake-up. Reset drops them; those in use
		// are closed when released.
		reconnected: c.pool.Reset,
	}
	listener := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return reconnect.connect(ctx, c.pool.Config().ConnConfig)
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				c.logger.WarnContext(ctx, "listener", "error", err)
			}
		},
		// connect waits between attempts itself; pgxlisten's own delay (a
		// minute by default) would hold every wake-up back that long
		// after a database restart.
		ReconnectDelay: -1,
	}
	listener.Handle(finishedChannel, finishedHandler{c})
	listener.Handle(keys.Channel, c.keys)
	listener.Handle(eventsChannel, c.events)
	if c.river != nil {
		channel, err := c.queries.WakeChannel(ctx)
		if err != nil {
			stop()
			return fmt.Errorf("read the wake channel: %w", err)
		}
		c.river.handleWake(listener, channel)
		listener.Handle(dueChannel, dueHandler{c})
		listener.Handle(settingsChannel, settingsHandler{c})
		listener.Handle(cancelChannel, cancelHandler{c})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = listener.Listen(listenCtx) // returns only when listenCtx ends
	})
	if c.river != nil {
		wg.Go(func() { c.runTimers(listenCtx) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-c.finished.ready:
	case <-ctx.Done():
		stop()
		<-done
		return fmt.Errorf("listen for finished invocations: %w", ctx.Err())
	}
	c.stopListen, c.listenDone = stop, done

	if c.river != nil {
		c.here.start(ctx)
		// River runs until the context given to Start ends; the client's
		// lifetime is Stop's business, not the start-up deadline's.
		if err := c.river.start(context.WithoutCancel(ctx)); err != nil {
			c.stopListening()
			return err
		}
	}
	return nil
}

// Stop stops working and listening. Invocations already running finish
// first, unless ctx ends before they do; then they are cancelled.
func (c *Client) Stop(ctx context.Context) error {
	var err error
	if c.river != nil {
		// Calls running here drain alongside River's jobs, under the same
		// deadline; what is left when it passes is handed back.
		hereDrained := make(chan struct{})
		go func() {
			c.here.stop(ctx)
			close(hereDrained)
		}()
		defer func() { <-hereDrained }()
		err = c.river.stop(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopListening()
	return err
}

func (c *Client) stopListening() {
	if c.stopListen != nil {
		c.stopListen()
		<-c.listenDone
		c.stopListen = nil
	}
}

// ErrNotMigrated is returned by Ready while migrations are pending.
var ErrNotMigrated = errors.New("database schema is not migrated; run picloud migrate")

// Ready reports whether the database is reachable and fully migrated.
func (c *Client) Ready(ctx context.Context) error {
	pending, err := Pending(ctx, c.pool)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%w (pending: %v)", ErrNotMigrated, pending)
	}
	return nil
}
