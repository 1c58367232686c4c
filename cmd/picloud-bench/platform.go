package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/queue"
)

// platform is PiCloud running in this process as serve runs it: API,
// queue and Lua in sandbox processes.
type platform struct {
	pool   *pgxpool.Pool
	client *queue.Client
	url    string
	http   *http.Client
	stop   func()
}

func startPlatform(ctx context.Context, pool *pgxpool.Pool, concurrency int) (*platform, error) {
	// Warnings only: the harness's own progress goes to the same stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sandboxes, err := executor.NewSandboxes(executor.SandboxConfig{Processes: concurrency, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start sandboxes: %w", err)
	}
	client, err := queue.NewClient(pool, queue.Config{Executor: sandboxes, Concurrency: concurrency, Logger: logger})
	if err != nil {
		sandboxes.Close()
		return nil, fmt.Errorf("queue client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		sandboxes.Close()
		return nil, fmt.Errorf("start queue client: %w", err)
	}
	functions := catalog.New(pool)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = client.Stop(context.WithoutCancel(ctx))
		sandboxes.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: api.New(api.Config{
		Invocations: client, Events: client, Stats: client, Ready: client,
		Functions: functions, Env: functions, Schedules: functions, Keys: client.Keys(),
		Logger: logger, DisableAuth: true,
	}), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	p := &platform{
		pool:   pool,
		client: client,
		url:    "http://" + ln.Addr().String(),
		// Enough idle connections for every load-generating client, so the
		// throughput run measures PiCloud, not TCP handshakes.
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	p.stop = func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(stopCtx)
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("http server", slog.Any("err", err))
		}
		if err := client.Stop(stopCtx); err != nil {
			logger.Warn("stop queue client", slog.Any("err", err))
		}
		sandboxes.Close()
	}
	return p, nil
}
