// The PiCloud API client: openapi-fetch typed with the paths of
// openapi/openapi.yaml. Everything about requests and responses comes from
// the generated schema.d.ts; this file only adds authentication.

import createFetchClient from "openapi-fetch";
import type { Client, ClientOptions, Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type * from "./schema.js";

/** Named schemas of the API, e.g. `Schemas["InvocationBody"]`. */
export type Schemas = components["schemas"];

/** A client whose methods (GET, PUT, POST, DELETE...) take typed paths. */
export type PiCloudClient = Client<paths>;

export interface Options extends Omit<ClientOptions, "baseUrl"> {
  /** Root URL of the server, without /v1, e.g. "http://localhost:8080". */
  baseUrl: string;
  /** API key, sent as "Authorization: Bearer <apiKey>". */
  apiKey?: string;
}

export function createClient({ apiKey, ...options }: Options): PiCloudClient {
  const client = createFetchClient<paths>(options);
  if (apiKey) {
    client.use(bearer(apiKey));
  }
  return client;
}

// A middleware rather than a default header, so that a request that sets its
// own Authorization (another key, for one call) keeps it.
function bearer(apiKey: string): Middleware {
  return {
    onRequest({ request }) {
      if (!request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${apiKey}`);
      }
      return request;
    },
  };
}
