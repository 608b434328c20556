// The console is a client of the ARM API like any other: a bearer token from the client
// credentials sign-in, the same roles, 202 + Location followed for actions.

export const NETWORK = "2024-05-01";
export const COMPUTE = "2024-07-01";
export const SUBSCRIPTIONS = "2022-12-01";
export const AUTHORIZATION = "2022-04-01";
export const INSIGHTS = "2018-01-01";

export interface Session {
  token: string;
  tenant: string;
  clientId: string;
  /** Seconds since the epoch. */
  expires: number;
}

const KEY = "tessera-console-session";

export function savedSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Session | null;
    return s && s.expires > Date.now() / 1000 + 30 ? s : null;
  } catch {
    return null;
  }
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

/** An error as ARM (or the token endpoint) put it. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

async function errorOf(r: Response): Promise<ApiError> {
  let code = `HTTP${r.status}`;
  let message = r.statusText;
  try {
    const body = await r.json();
    if (body.error && typeof body.error === "object") {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    } else if (typeof body.error === "string") {
      code = body.error;
      message = body.error_description ?? message;
    }
  } catch {
    // not JSON: the status says it
  }
  return new ApiError(r.status, code, message);
}

/** Client credentials sign-in at this server's token endpoint. */
export async function signIn(tenant: string, clientId: string, secret: string): Promise<Session> {
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: clientId,
    client_secret: secret,
    scope: `${location.origin}/.default`,
  });
  const r = await fetch(`/${encodeURIComponent(tenant)}/oauth2/v2.0/token`, { method: "POST", body: form });
  if (!r.ok) throw await errorOf(r);
  const t = await r.json();
  const s: Session = { token: t.access_token, tenant, clientId, expires: Date.now() / 1000 + Number(t.expires_in) };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

function withVersion(path: string, version: string): string {
  return path.includes("api-version=") ? path : `${path}${path.includes("?") ? "&" : "?"}api-version=${version}`;
}

export class Api {
  constructor(
    private session: Session,
    private expired: () => void,
  ) {}

  get clientId(): string {
    return this.session.clientId;
  }

  async call(method: string, path: string, version: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const url = path.startsWith("http") ? path : withVersion(path, version);
    const r = await fetch(url, {
      method,
      signal,
      headers: {
        Authorization: `Bearer ${this.session.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401) {
      this.expired();
    }
    if (!r.ok) throw await errorOf(r);
    return r;
  }

  async get<T = any>(path: string, version = NETWORK, signal?: AbortSignal): Promise<T> {
    return (await this.call("GET", path, version, undefined, signal)).json();
  }

  /** Every item of a list, following nextLink. */
  async list<T = any>(path: string, version = NETWORK): Promise<T[]> {
    const out: T[] = [];
    let next: string | undefined = path;
    while (next) {
      const page: { value?: T[]; nextLink?: string } = await this.get(next, version);
      out.push(...(page.value ?? []));
      next = page.nextLink;
    }
    return out;
  }

  async put<T = any>(path: string, body: unknown, version = NETWORK): Promise<T> {
    return (await this.call("PUT", path, version, body)).json();
  }

  async delete(path: string, version = NETWORK): Promise<void> {
    await this.call("DELETE", path, version);
  }

  /** A POST action; a 202 is followed to its result. */
  async action<T = any>(path: string, body: unknown, version = NETWORK): Promise<T> {
    let r = await this.call("POST", path, version, body);
    for (let i = 0; r.status === 202 && i < 120; i++) {
      const location = r.headers.get("Location") ?? r.headers.get("Azure-AsyncOperation");
      if (!location) break;
      // The server's Retry-After (at least a quarter second once the first poll was early).
      const wait = Math.min(Math.max(Number(r.headers.get("Retry-After") ?? "1") || 0, i > 0 ? 0.25 : 0), 5);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait * 1000));
      r = await this.call("GET", location, version);
    }
    if (r.status === 202) throw new ApiError(202, "StillRunning", `${path} has not finished; try again.`);
    return r.json();
  }
}
