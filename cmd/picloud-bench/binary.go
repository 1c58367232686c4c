package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// picloudBinary is cmd/picloud built once per run, for the scenarios that
// need real node processes; its methods idle and scaleOut are scenarios.
type picloudBinary struct {
	path string
}

// buildPicloud builds ./cmd/picloud (the harness runs from the
// repository's root) into a temporary directory that cleanup removes.
// CGO is off as in the release builds, so what is measured is what ships.
func buildPicloud(ctx context.Context) (*picloudBinary, func(), error) {
	dir, err := os.MkdirTemp("", "picloud-bench-bin-")
	if err != nil {
		return nil, nil, fmt.Errorf("create the build directory: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	path := filepath.Join(dir, "picloud")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/picloud")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("go build ./cmd/picloud (run from the repository root, with go on PATH): %w\n%s", err, out)
	}
	return &picloudBinary{path: path}, cleanup, nil
}

// nodeProcess is a running picloud command.
type nodeProcess struct {
	name   string
	cmd    *exec.Cmd
	stderr *tail
	exited chan struct{} // closed once the process has exited and err is set
	err    error
}

// start runs picloud with args and env added to the harness's own
// environment. Should ctx end first, the process gets SIGTERM, then
// SIGKILL if it has not exited 30 s later.
func (b *picloudBinary) start(ctx context.Context, name string, env []string, args ...string) (*nodeProcess, error) {
	cmd := exec.CommandContext(ctx, b.path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	n := &nodeProcess{name: name, cmd: cmd, stderr: &tail{max: 8 << 10}, exited: make(chan struct{})}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		n.err = cmd.Wait()
		close(n.exited)
	}()
	return n, nil
}

// stop asks the process to shut down as an orchestrator does, with
// SIGTERM, and fails if it does not exit cleanly within timeout.
func (n *nodeProcess) stop(timeout time.Duration) error {
	select {
	case <-n.exited:
		return n.unexpectedExit("before it was stopped")
	default:
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", n.name, err)
	}
	select {
	case <-n.exited:
		if n.err != nil {
			return fmt.Errorf("%s did not stop cleanly: %w\n%s", n.name, n.err, n.stderr)
		}
		return nil
	case <-time.After(timeout):
		_ = n.cmd.Process.Kill()
		<-n.exited
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed\n%s", n.name, timeout, n.stderr)
	}
}

// unexpectedExit describes a process that exited on its own, when.
func (n *nodeProcess) unexpectedExit(when string) error {
	if n.err == nil {
		return fmt.Errorf("%s exited %s, with status 0\n%s", n.name, when, n.stderr)
	}
	return fmt.Errorf("%s exited %s: %w\n%s", n.name, when, n.err, n.stderr)
}

// waitReady polls url (a /readyz) until it answers 200, the process exits,
// or timeout passes.
func (n *nodeProcess) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if res, err := client.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v\n%s", n.name, timeout, n.stderr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.exited:
			return n.unexpectedExit("before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail keeps the last max bytes written to it: enough of a node's stderr
// to say why it failed, without holding a long run's logs.
type tail struct {
	max int
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// freeAddr returns a loopback address nothing listens on right now, for a
// node's --health-addr.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("free port %s: %w", addr, err)
	}
	return addr, nil
}

// adminURL is the URL of the server the run measures on, as openServer
// found it: the platform's pool was parsed from it (freshDatabase only
// swaps the database name afterwards), and pgx keeps the string it parsed.
func adminURL(p *platform) string {
	return p.pool.Config().ConnConfig.ConnString()
}

// withDatabase returns connection string conn with its database replaced
// by name, for a node process; conn is a URL or keyword/value pairs, as
// DATABASE_URL may be either.
func withDatabase(conn, name string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", fmt.Errorf("database URL: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// The last of repeated keywords wins; name is ours and needs no quoting.
	return conn + " dbname=" + name, nil
}
