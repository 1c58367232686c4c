// Package pgcluster finds a local PostgreSQL installation and runs a private
// cluster from it, for `picloud dev` and for tests.
//
// Design:
//
//   - Nothing is downloaded. Find looks for postgres, initdb and pg_ctl on
//     PATH, then in versioned distribution directories such as
//     /usr/lib/postgresql/*/bin (highest version wins). When nothing is
//     found the error tells the user to set DATABASE_URL or install the
//     server package.
//   - The cluster listens on a Unix socket only (empty listen_addresses), so it
//     never competes for a TCP port with another server, and trust
//     authentication is safe: the socket lives in a 0700 directory owned by
//     the server user, so only that user (and root) can connect.
//   - The socket directory is the data directory itself unless that would
//     make the socket path too long for sun_path (~108 bytes); then it is a
//     short directory in os.TempDir() named after a hash of the data
//     directory, so it is stable across restarts.
//   - Settings are written to picloud.conf in the data directory, included
//     from postgresql.conf, rather than passed with pg_ctl -o: pg_ctl hands
//     -o to a shell, and paths would need shell quoting.
//   - The server is started with pg_ctl, which daemonizes it with its output
//     going to <data dir>/log/postgres.log. It therefore outlives the calling
//     process and holds none of its file descriptors (a child holding stdout
//     would make `go test` wait forever). A later Start on the same directory
//     finds it running and reuses it; Stop shuts it down.
//   - PostgreSQL refuses to run as root. When the caller is root every child
//     process runs as the "postgres" system user, and the directories are
//     chowned to it.
//
// Start does not serialize concurrent callers on the same data directory;
// callers that may race (as test processes do) must coordinate, see
// internal/dbtest.
package pgcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// port only names the socket file (.s.PGSQL.5432); each cluster has its own
// socket directory, so a fixed value never clashes.
const port = 5432

// maxSocketPath keeps <socket dir>/.s.PGSQL.5432 below the 108-byte
// sun_path limit (107 usable on Linux, 103 on macOS) with some margin.
const maxSocketPath = 100

const confFile = "picloud.conf"

// Options configure Start.
type Options struct {
	// DataDir is the cluster directory; it is created and initialized if it
	// does not hold a cluster yet. Required; made absolute.
	DataDir string
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
	// Ephemeral trades crash safety for speed (fsync, synchronous_commit
	// and full_page_writes off, initdb without sync). For tests only: a
	// machine crash can corrupt such a cluster.
	Ephemeral bool
}

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	dataDir   string
	socketDir string
	bins      Binaries
	acct      account
	log       *slog.Logger
}

// Start returns a running cluster in opts.DataDir: it initializes the
// directory if needed, reuses a server that is already running there (for
// example one left by a previous run) and starts it otherwise.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: Options.DataDir is required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: data dir: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bins, err := Find()
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		dataDir:   dataDir,
		socketDir: socketDirFor(dataDir),
		bins:      bins,
		acct:      acct,
		log:       log.With(slog.String("data_dir", dataDir)),
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if err := c.ensureInitialized(ctx, opts.Ephemeral); err != nil {
		return nil, err
	}
	confChanged, err := c.writeConf(opts.Ephemeral)
	if err != nil {
		return nil, err
	}
	running, err := c.running(ctx)
	if err != nil {
		return nil, err
	}
	if running {
		c.log.Debug("pgcluster: reusing running server")
		if confChanged {
			// Settings such as fsync take effect on reload; ones that need a
			// restart are reported in the server log.
			if out, err := c.pgCtl(ctx, "reload", "-D", c.dataDir, "-s"); err != nil {
				return nil, fmt.Errorf("pgcluster: pg_ctl reload: %w: %s", err, out)
			}
		}
	} else {
		start := time.Now()
		if err := c.start(ctx); err != nil {
			return nil, err
		}
		c.log.Info("pgcluster: server started", slog.Duration("took", time.Since(start)), slog.String("socket_dir", c.socketDir))
		if ctx.Err() != nil {
			// Cancelled while pg_ctl was starting the server: the caller
			// will never stop it, so stop it here.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := c.Stop(stopCtx); err != nil {
				c.log.Warn("pgcluster: stop after cancellation", slog.Any("error", err))
			}
			return nil, fmt.Errorf("pgcluster: %w", context.Cause(ctx))
		}
	}
	if err := c.ping(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// DataDir is the absolute cluster directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// SocketDir is the directory holding the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// LogFile is where the server writes its log.
func (c *Cluster) LogFile() string { return filepath.Join(c.dataDir, "log", "postgres.log") }

// URL returns a connection URL for database as superuser postgres over the
// Unix socket, e.g. postgres://postgres@/db?host=%2Fpath%2Fto%2Fsocketdir.
// Both pgx and libpq (psql) accept it.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.User("postgres"),
		Path:   "/" + database,
		// libpq and pgx decode only %XX in URIs, not '+' as space, so the
		// form encoding of url.Values would corrupt paths with spaces.
		RawQuery: "host=" + strings.ReplaceAll(url.QueryEscape(c.socketDir), "+", "%20"),
	}
	return u.String()
}

// Stop shuts the server down (fast mode: clients are disconnected, open
// transactions roll back) and waits for it. Stopping a stopped cluster is
// not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	running, err := c.running(ctx)
	if err != nil || !running {
		return err
	}
	start := time.Now()
	if out, err := c.pgCtl(ctx, "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "60", "-s"); err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w: %s", err, strings.TrimSpace(out))
	}
	c.log.Info("pgcluster: server stopped", slog.Duration("took", time.Since(start)))
	return nil
}

// EnsureDatabase creates database name unless it exists, so a dev setup can
// call it on every start.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgcluster: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return nil
}

// socketDirFor prefers the data directory (private and obvious) and falls
// back to a short, stable directory when the socket path would not fit in
// sun_path or the path has characters unix_socket_directories cannot carry.
func socketDirFor(dataDir string) string {
	if len(dataDir)+len("/.s.PGSQL.5432") <= maxSocketPath && !strings.ContainsAny(dataDir, "\",'\n\r\\") {
		return dataDir
	}
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "picloud-pg-"+hex.EncodeToString(sum[:8]))
}

func (c *Cluster) prepareDirs() error {
	parent := filepath.Dir(c.dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := c.acct.ensureTraversable(parent, c.log); err != nil {
		return err
	}
	if c.socketDir == c.dataDir {
		return nil
	}
	if strings.ContainsAny(c.socketDir, "\",'\n\r\\") {
		return fmt.Errorf("pgcluster: socket directory %q contains characters PostgreSQL cannot use; set TMPDIR to a plain path", c.socketDir)
	}
	if err := os.Mkdir(c.socketDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgcluster: socket dir: %w", err)
	} else if err == nil {
		if err := c.acct.chown(c.socketDir); err != nil {
			return err
		}
	}
	if err := c.acct.checkOwned(c.socketDir); err != nil {
		return err
	}
	return c.acct.ensureTraversable(filepath.Dir(c.socketDir), c.log)
}

// ensureInitialized runs initdb if dataDir holds no cluster yet. A new
// directory is built under a temporary name and renamed into place, so an
// interrupted initdb never leaves a half-built cluster that a later Start
// would try to use. An existing empty directory (perhaps a mount point,
// which cannot be replaced by rename) is initialized in place.
func (c *Cluster) ensureInitialized(ctx context.Context, ephemeral bool) error {
	entries, err := os.ReadDir(c.dataDir)
	inPlace := err == nil
	switch {
	case err == nil && len(entries) > 0:
		if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err != nil {
			return fmt.Errorf("pgcluster: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION); "+
				"choose another directory or remove it", c.dataDir)
		}
		return nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("pgcluster: %w", err)
	}

	start := time.Now()
	target := c.dataDir
	if !inPlace {
		target = c.dataDir + ".initdb"
		if err := os.RemoveAll(target); err != nil {
			return fmt.Errorf("pgcluster: remove leftover %s: %w", target, err)
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		defer os.RemoveAll(target) // no-op once renamed
	}
	if err := c.acct.chown(target); err != nil {
		return err
	}
	args := []string{"-D", target, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"}
	if ephemeral {
		args = append(args, "--no-sync")
	}
	if out, err := c.command(ctx, c.bins.Initdb, args...); err != nil {
		return fmt.Errorf("pgcluster: initdb: %w: %s", err, strings.TrimSpace(out))
	}
	conf, err := os.OpenFile(filepath.Join(target, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	_, err = fmt.Fprintf(conf, "\n# Settings managed by PiCloud; rewritten on every start.\ninclude = '%s'\n", confFile)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: postgresql.conf: %w", err)
	}
	if !inPlace {
		if err := os.Rename(target, c.dataDir); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
	}
	c.log.Info("pgcluster: initialized cluster", slog.Duration("took", time.Since(start)), slog.String("binaries", c.bins.Dir))
	return nil
}

// writeConf reports whether the settings differ from the ones on disk, so
// a running server can be told to reload.
func (c *Cluster) writeConf(ephemeral bool) (bool, error) {
	var b strings.Builder
	b.WriteString("# Written by PiCloud (internal/pgcluster) on every start; edits are overwritten.\n")
	b.WriteString("listen_addresses = ''\n")
	fmt.Fprintf(&b, "port = %d\n", port)
	// Double quotes let the list element contain spaces; socketDirFor
	// excludes the characters that would need escaping.
	fmt.Fprintf(&b, "unix_socket_directories = '\"%s\"'\n", c.socketDir)
	b.WriteString("unix_socket_permissions = 0700\n")
	// Test suites open a pool per test and run packages in parallel.
	b.WriteString("max_connections = 200\n")
	if ephemeral {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	path := filepath.Join(c.dataDir, confFile)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("pgcluster: %w", err)
	}
	if string(old) == b.String() {
		return false, nil
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return false, fmt.Errorf("pgcluster: %w", err)
	}
	return true, c.acct.chown(path)
}

// running asks pg_ctl, which checks that the PID in postmaster.pid is
// alive; a stale file from a crash therefore reads as "not running".
func (c *Cluster) running(ctx context.Context) (bool, error) {
	out, err := c.pgCtl(ctx, "status", "-D", c.dataDir)
	if err == nil {
		return true, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 3 { // documented "not running"
		return false, nil
	}
	return false, fmt.Errorf("pgcluster: pg_ctl status: %w: %s", err, strings.TrimSpace(out))
}

func (c *Cluster) start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(c.dataDir, "log"), 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := c.acct.chown(filepath.Join(c.dataDir, "log")); err != nil {
		return err
	}
	// Not cancelled with ctx: exec kills pg_ctl with SIGKILL, but the
	// postmaster it forked goes on starting, unowned, and the caller gets
	// "pg_ctl start: signal: killed" for what was a Ctrl+C. pg_ctl returns
	// within its own -t 60; Start then stops the server if ctx ended.
	out, err := c.pgCtl(context.WithoutCancel(ctx), "start", "-D", c.dataDir, "-l", c.LogFile(), "-w", "-t", "60", "-s")
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl start: %w: %s\n--- end of %s ---\n%s",
			err, strings.TrimSpace(out), c.LogFile(), c.logTail())
	}
	return nil
}

// ping proves the server answers on the socket we advertise. A reused
// server may have been started with other settings, or its PID file may
// point at an unrelated live process after a crash and PID reuse.
func (c *Cluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: server in %s does not answer on %s (if a crash left a stale postmaster.pid "+
				"whose PID now belongs to another process, stop that process or remove the file): %w\n--- end of %s ---\n%s",
				c.dataDir, c.socketDir, err, c.LogFile(), c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) logTail() string {
	f, err := os.Open(c.LogFile())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 4 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

func (c *Cluster) pgCtl(ctx context.Context, args ...string) (string, error) {
	return c.command(ctx, c.bins.PgCtl, args...)
}

// command runs a PostgreSQL tool as the server account and returns its
// combined output for error messages.
func (c *Cluster) command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// The caller's working directory may not be readable by the postgres
	// user, and initdb resolves its own path relative to it.
	cmd.Dir = "/"
	cmd.Env = serverEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl's daemon child redirects its output to the log file, so the
	// pipe closes when pg_ctl exits. Should a child ever keep it open, do
	// not hang the caller (go test waits for such pipes) forever.
	cmd.WaitDelay = 5 * time.Second
	c.acct.apply(cmd)
	err := cmd.Run()
	return out.String(), err
}

// serverEnv drops PG* variables: PGPORT, PGDATA and friends would silently
// change what pg_ctl and the server do, and nothing here needs them.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
