// The typed API client. Paths, bodies and answers come from `schema.d.ts`, generated from the
// server's OpenAPI document (`npm run openapi`), so a route or field the server does not have
// is a type error here.

import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Conversation = Schemas["Conversation"];
export type OrgSettings = Schemas["OrgSettings"];
export type Role = Schemas["Role"];

/** The API sits beside the dashboard: `<prefix>/<web_path>/` is served, `<prefix>/v1/...` answers. */
export function apiBase(): string {
  return new URL("..", window.location.href).pathname.replace(/\/$/, "");
}

/** An answer with the relay's error shape, or no answer at all (`code` = "network"). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(`${status} ${code}`);
  }
}

let accessToken: string | null = null;

export function setAccessToken(token: string | null): void {
  accessToken = token;
}

const auth: Middleware = {
  onRequest({ request }) {
    if (accessToken) request.headers.set("Authorization", `Bearer ${accessToken}`);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: apiBase() });
api.use(auth);

/** Unwrap an openapi-fetch answer: the data, or an `ApiError` with the relay's code. */
export async function call<T>(
  pending: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await pending;
  } catch {
    throw new ApiError(0, "network");
  }
  const { data, error, response } = result;
  if (!response.ok) {
    const code =
      typeof error === "object" && error !== null && "error" in error
        ? String((error as { error: { code?: unknown } }).error.code ?? "internal")
        : "internal";
    throw new ApiError(response.status, code);
  }
  return data as T;
}
