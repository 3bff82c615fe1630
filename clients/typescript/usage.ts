// Compiled in CI (`tsc --strict`) against types generated from /openapi.json by
// openapi-typescript: proves the schema yields usable TypeScript types. Not shipped.
import type { components, operations, paths } from "./schema";

type Schemas = components["schemas"];
type LoginBody = operations["auth-login"]["requestBody"]["content"]["application/json"];
type Accepted =
  paths["/v1/tests/{test_id}/regrade"]["post"]["responses"][202]["content"]["application/json"];
type Problem = operations["submissions-submit"]["responses"][409]["content"]["application/json"];

// Every 202 is the one named TaskAccepted; every error the one ErrorBody.
const sameAccepted: Schemas["TaskAccepted"] = {} as Accepted;
const sameError: Schemas["ErrorBody"] = {} as Problem;
void sameAccepted;
void sameError;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Schemas["ErrorBody"],
  ) {
    super(`${body.error.code}: ${body.error.message}`);
  }
}

async function call<T>(base: string, path: string, init: RequestInit, token?: string): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${path}`, { ...init, headers });
  const body: unknown = await response.json();
  if (!response.ok) throw new ApiError(response.status, body as Schemas["ErrorBody"]);
  return body as T;
}

export async function login(base: string, body: LoginBody): Promise<Schemas["TokenPair"]> {
  return call(base, "/v1/auth/login", { method: "POST", body: JSON.stringify(body) });
}

export async function regradeAndWait(
  base: string,
  token: string,
  testId: number,
): Promise<Schemas["JobOut"]> {
  const accepted = await call<Accepted>(base, `/v1/tests/${testId}/regrade`, { method: "POST" }, token);
  for (;;) {
    const job = await call<Schemas["JobOut"]>(base, `/v1/tasks/${accepted.task_id}`, {}, token);
    if (job.status === "succeeded" || job.status === "failed" || job.status === "canceled") {
      return job;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
