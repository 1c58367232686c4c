package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

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

func (c *devCmd) Run(ctx context.Context, logger *slog.Logger) error {
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
	databaseURL := c.DatabaseURL
	if databaseURL == "" {
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
	err = n.run(ctx, logger, databaseURL, func(baseURL string) {
		if c.Auth {
			fmt.Fprintf(os.Stderr, `
API keys are required. Make one with:
  DATABASE_URL='%s' picloud keys create --scope admin
and send it as -H "Authorization: Bearer <key>".
`, databaseURL)
		}
		fmt.Fprintf(os.Stderr, `
PiCloud is running at %[1]s

  Dashboard:          %[1]s/ui/
  Deploy a function:  curl -X PUT %[1]s/v1/functions/hello -H 'content-type: application/json' \
                        -d "{\"source\": $(jq -Rs . < testdata/functions/hello.lua)}"
  Call it:            curl '%[1]s/fn/hello?name=Ada'
  API docs:           %[1]s/docs

Press Ctrl+C to stop.

`, baseURL)
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
