package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/internal/pgcluster"
)

// devDatabase is the database dev creates in its private cluster.
const devDatabase = "picloud"

type devCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL connection URL; without it, dev runs a private cluster in --data-dir."`
	DataDir     string `default:".picloud" env:"PICLOUD_DATA_DIR" type:"path" help:"Directory for the private cluster's data (kept across restarts)."`
	Auth        bool   `env:"PICLOUD_AUTH" negatable:"" help:"Require API keys, as serve does (off by default in dev, and the log says so)."`
	nodeFlags
	apiFlags
	workerFlags
}

func (c *devCmd) Run(ctx context.Context, kctx *kong.Context, logger *slog.Logger) error {
	err := c.run(ctx, kctx.Stderr, logger)
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl+C, perhaps while PostgreSQL was starting
	}
	return err
}

func (c *devCmd) run(ctx context.Context, stderr io.Writer, logger *slog.Logger) error {
	c.noAuth = !c.Auth
	n := node{api: &c.apiFlags, worker: &c.workerFlags, nodeFlags: c.nodeFlags}
	// Bind first: an address in use is reported now, not after initdb and
	// the migrations (seconds on a first start).
	bound, err := n.bind()
	if err != nil {
		return err
	}
	defer bound.close()
	n.bound = bound
	databaseURL, private := c.DatabaseURL, c.DatabaseURL == ""
	if private {
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(c.DataDir, "pg"), Logger: logger})
		if err != nil {
			return err // names the ways to fix it
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := cluster.Stop(stopCtx); err != nil {
				logger.Warn("stop PostgreSQL", "error", err)
			}
		}()
		if err := cluster.EnsureDatabase(ctx, devDatabase); err != nil {
			return err
		}
		databaseURL = cluster.URL(devDatabase)
		logger.Info("private PostgreSQL running", "data_dir", cluster.DataDir(), "url", databaseURL)
	}
	return n.run(ctx, logger, databaseURL, func(baseURL string) {
		printDevBanner(stderr, baseURL, databaseURL, private, c.Auth)
	})
}

// printDevBanner tells a developer where everything is. The private
// cluster's URL is printed in full, ready to export: psql and picloud keys
// create need it, and it is found nowhere else but in a log line. A URL the
// user gave is theirs and may hold a password, so it is not repeated.
func printDevBanner(w io.Writer, baseURL, databaseURL string, private, auth bool) {
	fmt.Fprintf(w, "\nPiCloud is running at %s\n\n", baseURL)
	fmt.Fprintf(w, "  Dashboard:  %s/ui/\n", baseURL)
	fmt.Fprintf(w, "  API docs:   %s/docs\n", baseURL)
	if private {
		fmt.Fprintf(w, "  Database:   export DATABASE_URL='%s'\n", databaseURL)
		fmt.Fprintf(w, "              (then: psql \"$DATABASE_URL\", picloud keys create ...)\n")
	} else {
		fmt.Fprintf(w, "  Database:   the one DATABASE_URL (or --database-url) names\n")
	}
	fmt.Fprintf(w, "  CLI:        export PICLOUD_URL=%s\n", baseURL)
	fmt.Fprintf(w, "              go run ./cmd/picloud fn deploy hello testdata/functions/hello.lua\n")
	fmt.Fprintf(w, "  Call it:    curl '%s/fn/hello?name=Ada'\n", baseURL)
	if auth {
		fmt.Fprintf(w, "\nAPI keys are required. Make one with:\n")
		if private {
			fmt.Fprintf(w, "  DATABASE_URL='%s' go run ./cmd/picloud keys create --scope admin\n", databaseURL)
		} else {
			fmt.Fprintf(w, "  go run ./cmd/picloud keys create --scope admin   (with DATABASE_URL set to the same database)\n")
		}
		fmt.Fprintf(w, "and send it as -H \"Authorization: Bearer <key>\" (the CLI reads PICLOUD_API_KEY).\n")
	}
	fmt.Fprintf(w, "\nPress Ctrl+C to stop.\n\n")
}
