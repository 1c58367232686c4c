package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// idleDuration is how long `picloud stats idle` counts: a minute, as the
// issue states its target; a quick run extrapolates from 15 s, which
// still holds three of River's 5 s listener pings.
func idleDuration(s settings) time.Duration {
	if s.Quick {
		return 15 * time.Second
	}
	return time.Minute
}

// idleRoles are measured at the same time, each on its own database;
// River's default client is the baseline.
func idleRoles() []struct{ role, metric string } {
	return []struct{ role, metric string }{
		{"serve", "serve statements/min"},
		{"worker", "worker statements/min"},
		{"api", "api statements/min"},
		{"river", idleBaseline},
	}
}

const idleBaseline = "River default client statements/min"

// idleJSON is what `picloud stats idle --json` prints (statsIdleCmd in
// cmd/picloud), as far as the harness reads it.
type idleJSON struct {
	DurationSeconds float64 `json:"duration_s"`
	Nodes           []struct {
		Role             string  `json:"role"`
		Statements       int     `json:"statements"`
		StatementsPerMin float64 `json:"statements_per_min"`
		Error            string  `json:"error"`
	} `json:"nodes"`
}

// idle counts the statements idle nodes send to PostgreSQL, through the
// built binary's `stats idle`, which owns the counting proxy and the node
// runners; it creates its scratch databases on the run's server.
func (b *picloudBinary) idle(ctx context.Context, p *platform, s settings) ([]result, error) {
	return b.measureIdle(ctx, adminURL(p), idleDuration(s), 5*time.Second)
}

// measureIdle counts for d, after letting the nodes start for warmup,
// on the server of admin.
func (b *picloudBinary) measureIdle(ctx context.Context, admin string, d, warmup time.Duration) ([]result, error) {
	roles := make([]string, 0, len(idleRoles()))
	for _, r := range idleRoles() {
		roles = append(roles, r.role)
	}
	// Start and drain come on top of warm-up and window.
	ctx, cancel := context.WithTimeout(ctx, warmup+d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.path, "stats", "idle", "--duration", d.String(), "--warmup", warmup.String(), "--roles", strings.Join(roles, ","), "--json")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+admin, "PICLOUD_LOG_LEVEL=warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	stderr := &tail{max: 8 << 10}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("picloud stats idle: %w\n%s%s", err, out, stderr)
	}
	var rep idleJSON
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("read picloud stats idle --json: %w\n%s", err, out)
	}
	perMin := map[string]float64{}
	for _, n := range rep.Nodes {
		if n.Error != "" {
			return nil, fmt.Errorf("picloud stats idle: %s: %s", n.Role, n.Error)
		}
		perMin[n.Role] = n.StatementsPerMin
	}
	rs := make([]result, 0, len(idleRoles()))
	for _, r := range idleRoles() {
		v, ok := perMin[r.role]
		if !ok {
			return nil, fmt.Errorf("picloud stats idle measured no %s node", r.role)
		}
		row := result{Scenario: "idle", Metric: r.metric, Unit: "statements/min", Value: v}
		if r.metric != idleBaseline {
			row.baselineMetric = "idle " + idleBaseline
		}
		rs = append(rs, row)
	}
	return rs, nil
}
