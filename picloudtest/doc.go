// Package picloudtest runs a whole PiCloud inside a Go test: PostgreSQL in a
// container (testcontainers-go), the schema migrated, and the platform
// (executor, queue, HTTP API) in the test process on a free port. Deploy a
// Lua function and invoke it as production would, then assert on the
// invocation: status, result, error and logs.
//
//	func TestHello(t *testing.T) {
//		p := picloudtest.Start(t)
//		p.DeployFile(t, "hello", "testdata/hello.lua")
//		inv := p.Invoke(t, "hello", map[string]any{"name": "Ada"})
//		if inv.Status != "succeeded" || inv.Result != "Hello, Ada!" {
//			t.Fatalf("hello = %s %v: %s", inv.Status, inv.Result, inv.Error)
//		}
//	}
//
// [Start] returns a [Platform] with the server's URL, a generated Go client
// (package github.com/picloud/picloud/sdk/go) holding an admin API key, and
// a pgxpool.Pool on the test's database. Everything is torn down with
// t.Cleanup.
//
// # Where PostgreSQL comes from
//
// In this order:
//
//   - [WithDatabaseURL], or the environment variable PICLOUD_TEST_DATABASE_URL:
//     an existing server. Its user must be allowed to CREATE DATABASE.
//   - Otherwise a container of [WithImage], or of PICLOUD_TEST_POSTGRES_IMAGE,
//     or of [DefaultImage]. Without [Main] each test gets a container of its
//     own (2 to 4 s); with [Main] the package's tests share one.
//
// Every test gets a fresh database either way: a copy of a template that
// was migrated once, made with CREATE DATABASE ... TEMPLATE (tens of
// milliseconds), and dropped when the test ends. Templates are named after
// a hash of the migrations, so a changed schema never reuses an old one;
// on a server of PICLOUD_TEST_DATABASE_URL they stay for the next run.
//
// # Without Docker
//
// When no Docker engine answers and no database URL is set, Start skips the
// test with a message that says how to enable it. With PICLOUD_TEST_REQUIRE=1
// in the environment it fails the test instead, so CI cannot pass by
// skipping.
//
// # Sharing one container
//
//	func TestMain(m *testing.M) { os.Exit(picloudtest.Main(m)) }
//
// [Main] starts nothing by itself: the first Start starts the container,
// later ones reuse it, and Main stops it after the last test. It also lets
// [WithProcessSandboxes] work, which re-executes the test binary.
//
// # Without a test
//
// [New] starts the same platform for code that has no t: TestMain (one
// platform for the whole package), a runnable example, a program. [Platform.Close]
// stops it. It finds PostgreSQL as Start does, but cannot skip: without
// one it returns an error that says how to provide it. Runnable examples
// have no t either, so [Main] leaves them out of the run, with a message,
// where Start would skip.
//
//	p, err := picloudtest.New(ctx)
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	res, err := p.Client.InvokeFunctionWithResponse(ctx, "hello", nil, body)
//
// The helpers that take a t ([Platform.Deploy], [Platform.Invoke], ...)
// work on its Platform too, in the tests that share it.
package picloudtest
