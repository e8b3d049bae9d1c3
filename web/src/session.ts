// Who is signed in. Tokens live in memory only: a reload or a closed tab signs the member
// out, and nothing of the session is left in the browser's storage.

import { api, call, setAccessToken, type Role } from "./api/client";

export interface Session {
  org: string;
  handle: string;
  role: Role;
  refreshToken: string;
  onDuty: boolean;
}

let session: Session | null = null;
let refreshTimer: number | undefined;

/** Rotate the tokens a little before the access token expires, for as long as signed in. */
function scheduleRefresh(expiresIn: number): void {
  window.clearTimeout(refreshTimer);
  const delay = Math.max(5, expiresIn - 30) * 1000;
  refreshTimer = window.setTimeout(async () => {
    const s = session;
    if (!s) return;
    try {
      const pair = await call(api.POST("/v1/auth/refresh", { body: { refresh_token: s.refreshToken } }));
      s.refreshToken = pair.refresh_token;
      setAccessToken(pair.access_token);
      scheduleRefresh(pair.expires_in);
    } catch {
      // The next request answers 401 and the dashboard asks to sign in again.
    }
  }, delay);
}

export function current(): Session | null {
  return session;
}

export async function signIn(org: string, handle: string, password: string, totp: string): Promise<Session> {
  const logged = await call(api.POST("/v1/auth/login", { body: { org, handle, password, totp } }));
  setAccessToken(logged.tokens.access_token);
  // A new session starts off duty: nobody is offered conversations until they say they are
  // at the desk.
  await call(api.PUT("/v1/members/me/duty", { body: { on_duty: false } }));
  session = { org, handle, role: logged.role, refreshToken: logged.tokens.refresh_token, onDuty: false };
  scheduleRefresh(logged.tokens.expires_in);
  return session;
}

export async function setDuty(onDuty: boolean): Promise<void> {
  const out = await call(api.PUT("/v1/members/me/duty", { body: { on_duty: onDuty } }));
  if (session) session.onDuty = out.on_duty;
}

export async function signOut(): Promise<void> {
  const s = session;
  session = null;
  window.clearTimeout(refreshTimer);
  if (s) {
    try {
      await call(api.POST("/v1/auth/logout", { body: { refresh_token: s.refreshToken } }));
    } catch {
      // Signing out locally is what matters; the server's session expires on its own.
    }
  }
  setAccessToken(null);
}
