// Smoke test of the client against a live server: PICLOUD_URL (and
// PICLOUD_API_KEY when the server requires keys). The Go test in sdk/
// starts a server and runs this; by hand:
//
//	PICLOUD_URL=http://localhost:8080 npm test
//
// The @ts-expect-error lines are the type half of the test: tsc fails when a
// mistake they mark stops being a type error, so a schema or generator
// change that loosens the types is caught at build time.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { createClient } from "../src/index.js";
import type { PiCloudClient, Schemas } from "../src/index.js";

const baseUrl = process.env["PICLOUD_URL"];
const apiKey = process.env["PICLOUD_API_KEY"] || undefined;

// Unique per run, so the test can also run against a long-lived server
// without meeting its own leftovers.
const name = `ts-smoke-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;

const source = `function handle(req)
  if req.trigger == "http" then
    return "Hello, " .. (req.query.name or "world") .. "!"
  end
  print("payload " .. json.encode(req.payload))
  return { greeting = "Hello, " .. req.payload.name .. "!", trigger = req.trigger }
end
`;

describe("PiCloud client", { skip: baseUrl ? false : "PICLOUD_URL is not set" }, () => {
  let client: PiCloudClient;
  const ids: number[] = [];

  before(() => {
    client = createClient({ baseUrl: baseUrl!, ...(apiKey ? { apiKey } : {}) });
  });

  after(async () => {
    if (client) {
      await client.DELETE("/v1/functions/{name}", { params: { path: { name } } });
    }
  });

  it("deploys a function", async () => {
    const { data, error, response } = await client.PUT("/v1/functions/{name}", {
      params: { path: { name } },
      body: { source, timeout_ms: 5000 },
    });
    assert.equal(error, undefined, `PUT failed: ${JSON.stringify(error)}`);
    assert.equal(response.status, 201);
    assert.ok(data);
    assert.equal(data.name, name);
    assert.equal(data.version, 1);
    assert.equal(data.url, `/fn/${name}`);
    assert.equal(data.timeout_ms, 5000);
  });

  it("reads the function back", async () => {
    const { data, error } = await client.GET("/v1/functions/{name}", { params: { path: { name } } });
    assert.equal(error, undefined);
    assert.equal(data?.source, source);

    const list = await client.GET("/v1/functions");
    assert.ok((list.data?.functions ?? []).some((f) => f.name === name), "listed");
  });

  it("invokes it synchronously", async () => {
    const { data, error, response } = await client.POST("/v1/functions/{name}/invocations", {
      params: { path: { name } },
      body: { payload: { name: "Ada" } },
    });
    assert.equal(error, undefined, `invoke failed: ${JSON.stringify(error)}`);
    assert.equal(response.status, 200);
    assert.ok(data);
    assert.equal(data.status, "succeeded", data.error);
    assert.equal(data.trigger, "api");
    assert.deepEqual(data.result, { greeting: "Hello, Ada!", trigger: "api" });
    assert.equal(data.logs?.[0]?.message, 'payload {"name":"Ada"}');
    ids.push(data.id);
  });

  it("invokes it asynchronously and long-polls the result", async () => {
    const queued = await client.POST("/v1/functions/{name}/invocations", {
      params: { path: { name } },
      body: { payload: { name: "Grace" }, async: true },
    });
    assert.equal(queued.response.status, 202);
    assert.ok(queued.data);
    const id = queued.data.id;
    assert.equal(queued.response.headers.get("Location"), `/v1/invocations/${id}`);

    const { data, error } = await client.GET("/v1/invocations/{id}", {
      params: { path: { id }, query: { wait: "10s" } },
    });
    assert.equal(error, undefined);
    assert.equal(data?.status, "succeeded", data?.error);
    assert.deepEqual(data?.result, { greeting: "Hello, Grace!", trigger: "api" });
    ids.push(id);
  });

  it("invokes it many times in one request", async () => {
    const names = ["Ada", "Grace", "Ada"];
    const { data, error, response } = await client.POST("/v1/functions/{name}/invocations:batch", {
      params: { path: { name } },
      body: {
        invocations: names.map((who, i) => ({
          payload: { name: who },
          // The first and the last share a key: one invocation for both.
          ...(who === "Ada" ? { idempotency_key: `${name}-batch` } : {}),
          ...(i === 1 ? { run_at: new Date().toISOString() } : {}),
        })),
      },
    });
    assert.equal(error, undefined, `batch failed: ${JSON.stringify(error)}`);
    assert.equal(response.status, 202);
    const invocations = data?.invocations ?? [];
    assert.equal(invocations.length, names.length);
    assert.equal(invocations[0]?.id, invocations[2]?.id, "one key, one invocation");
    for (const inv of invocations.slice(0, 2)) {
      assert.equal(inv.status, "queued");
      const done = await client.GET("/v1/invocations/{id}", { params: { path: { id: inv.id }, query: { wait: "10s" } } });
      assert.equal(done.data?.status, "succeeded", done.data?.error);
      ids.push(inv.id);
    }
    const first = await client.GET("/v1/invocations/{id}", { params: { path: { id: ids.at(-2)! } } });
    assert.deepEqual(first.data?.result, { greeting: "Hello, Ada!", trigger: "api" });

    const empty = await client.POST("/v1/functions/{name}/invocations:batch", {
      params: { path: { name } },
      body: { invocations: [] },
    });
    assert.equal(empty.response.status, 422);
    assert.equal(empty.error?.errors?.[0]?.location, "body.invocations");
  });

  it("gets an invocation by id", async () => {
    const id = ids[0]!;
    const { data, error } = await client.GET("/v1/invocations/{id}", { params: { path: { id } } });
    assert.equal(error, undefined);
    assert.equal(data?.id, id);
    assert.equal(data?.function, name);
    assert.deepEqual(data?.payload, { name: "Ada" });
    assert.equal(data?.links?.["self"], `/v1/invocations/${id}`);
  });

  it("calls /fn/{name} over plain HTTP", async () => {
    // No key: a function is public unless deployed with auth "key".
    const res = await fetch(new URL(`/fn/${name}?name=Ada`, baseUrl));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(await res.text(), "Hello, Ada!");
    const id = Number(res.headers.get("X-Invocation-Id"));
    assert.ok(id > 0, "X-Invocation-Id");

    const { data } = await client.GET("/v1/invocations/{id}", { params: { path: { id } } });
    assert.equal(data?.trigger, "http");
    assert.equal(data?.request?.query["name"], "Ada");
    ids.push(id);
  });

  it("lists the invocations, a page at a time", async () => {
    const seen: Schemas["InvocationBody"][] = [];
    let cursor: string | undefined;
    do {
      const { data, error } = await client.GET("/v1/invocations", {
        params: { query: { function: name, limit: 2, ...(cursor ? { cursor } : {}) } },
      });
      assert.equal(error, undefined);
      assert.ok(data);
      seen.push(...(data.invocations ?? []));
      cursor = data.next_cursor;
    } while (cursor);
    assert.deepEqual(
      seen.map((inv) => inv.id),
      [...ids].sort((a, b) => b - a),
      "newest first, all of them",
    );
    assert.ok(seen.every((inv) => inv.function === name && inv.status === "succeeded"));
  });

  it("returns problem documents as typed errors", async () => {
    const { data, error, response } = await client.GET("/v1/functions/{name}", {
      params: { path: { name: `${name}-missing` } },
    });
    assert.equal(data, undefined);
    assert.equal(response.status, 404);
    assert.equal(error?.status, 404);
    assert.match(error?.detail ?? "", /does not exist/);
  });

  it("rejects at runtime what the types reject at compile time", async () => {
    // @ts-expect-error: there is no /v1/function path
    const wrongPath = await client.GET("/v1/function", {});
    assert.equal(wrongPath.response.status, 404);

    const noSource = await client.PUT("/v1/functions/{name}", {
      params: { path: { name } },
      // @ts-expect-error: source is required
      body: { timeout_ms: 1000 },
    });
    assert.equal(noSource.response.status, 422);

    const badStatus = await client.GET("/v1/invocations", {
      // @ts-expect-error: status is an enum
      params: { query: { status: "done" } },
    });
    assert.equal(badStatus.response.status, 422);

    const stringId = await client.GET("/v1/invocations/{id}", {
      // @ts-expect-error: id is a number
      params: { path: { id: "first" } },
    });
    assert.equal(stringId.response.status, 422);

    const noName = await client.POST("/v1/functions/{name}/invocations", {
      // @ts-expect-error: the path parameter name is required
      params: { path: {} },
      body: {},
    });
    assert.ok(noName.response.status >= 400);
  });

  describe("with API keys", { skip: apiKey ? false : "PICLOUD_API_KEY is not set" }, () => {
    let invokeKey: Schemas["CreateKeyOutputBody"];
    let invoker: PiCloudClient;
    const privateName = `${name}-key`;

    before(async () => {
      const { data, error, response } = await client.POST("/v1/keys", {
        body: { name: "typescript smoke test", scope: "invoke" },
      });
      assert.equal(error, undefined, `create key failed: ${JSON.stringify(error)}`);
      assert.equal(response.status, 201);
      invokeKey = data!;
      invoker = createClient({ baseUrl: baseUrl!, apiKey: invokeKey.key });
    });

    after(async () => {
      await client.DELETE("/v1/functions/{name}", { params: { path: { name: privateName } } });
      if (invokeKey) {
        await client.DELETE("/v1/keys/{id}", { params: { path: { id: invokeKey.id } } });
      }
    });

    it("refuses requests without a key, or with a wrong one", async () => {
      const anonymous = createClient({ baseUrl: baseUrl! });
      const denied = await anonymous.GET("/v1/functions");
      assert.equal(denied.response.status, 401);
      assert.match(denied.response.headers.get("WWW-Authenticate") ?? "", /^Bearer/);
      assert.equal(denied.error?.status, 401);

      const wrongKey = await client.GET("/v1/functions", {
        headers: { Authorization: "Bearer pic_not-a-key" },
      });
      assert.equal(wrongKey.response.status, 401, "a per-request Authorization wins over the client's key");
    });

    it("lets an invoke key invoke but not deploy", async () => {
      assert.equal(invokeKey.scope, "invoke");
      assert.match(invokeKey.key, /^pic_/);
      assert.ok(invokeKey.key.startsWith(invokeKey.prefix));

      const invoked = await invoker.POST("/v1/functions/{name}/invocations", {
        params: { path: { name } },
        body: { payload: { name: "Key" } },
      });
      assert.equal(invoked.error, undefined);
      assert.deepEqual(invoked.data?.result, { greeting: "Hello, Key!", trigger: "api" });

      const deploy = await invoker.PUT("/v1/functions/{name}", {
        params: { path: { name } },
        body: { source },
      });
      assert.equal(deploy.response.status, 403);
      assert.match(deploy.error?.detail ?? "", /admin/);
    });

    it("guards /fn of a function deployed with auth key", async () => {
      const deployed = await client.PUT("/v1/functions/{name}", {
        params: { path: { name: privateName } },
        body: { source, auth: "key" },
      });
      assert.equal(deployed.error, undefined);
      assert.equal(deployed.data?.auth, "key");

      const url = new URL(`/fn/${privateName}?name=Key`, baseUrl);
      const anonymous = await fetch(url);
      assert.equal(anonymous.status, 401);
      await anonymous.body?.cancel();

      const withKey = await fetch(url, { headers: { Authorization: `Bearer ${invokeKey.key}` } });
      assert.equal(withKey.status, 200);
      assert.equal(await withKey.text(), "Hello, Key!");
    });

    it("lists and revokes keys", async () => {
      const list = await client.GET("/v1/keys");
      assert.equal(list.error, undefined);
      const listed = (list.data?.keys ?? []).find((k) => k.id === invokeKey.id);
      assert.ok(listed, "the new key is listed");
      assert.equal((listed as Record<string, unknown>)["key"], undefined, "listings never carry the key itself");

      const revoked = await client.DELETE("/v1/keys/{id}", { params: { path: { id: invokeKey.id } } });
      assert.equal(revoked.error, undefined);
      assert.ok(revoked.data?.revoked_at, "revoked_at is set");

      // Revocation reaches key caches by a database notification; allow it
      // a moment rather than racing it.
      let status = 0;
      for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
        status = (await invoker.GET("/v1/invocations", { params: { query: { limit: 1 } } })).response.status;
        if (status === 401) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(status, 401, "a revoked key stops working");
    });
  });
});
