// Browser test of the advocate dashboard against a real server: Debian's chromium driven by
// playwright-core. Boots `quietline serve` on a temporary SQLite database, creates an
// organisation and invitations with `quietline admin`, then tells the user's story:
//   an advocate enrols from the invitation link, signs in with TOTP, goes on duty, sees the
//   survivors who wait (urgent first) and claims one; the page refuses inline script (CSP);
//   a supervisor invites a member and changes the organisation settings.
// Screenshots of the main screens go to docs/screenshots/.
//
// QUIETLINE_BIN: the server binary (default: target/debug/quietline); SCREENSHOT_DIR: where
// the screenshots go (default: docs/screenshots).

import { spawn, execFileSync } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.QUIETLINE_BIN ?? join(repo, "target/debug/quietline");
const shots = process.env.SCREENSHOT_DIR ?? join(repo, "docs/screenshots");
mkdirSync(shots, { recursive: true });

// ------------------------------------------------------------------ helpers

const b64url = {
  encode: (buf) => Buffer.from(buf).toString("base64url"),
  decode: (s) => Buffer.from(s, "base64url"),
};

function base32Decode(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of s.replace(/[\s=]/g, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    bits += v.toString(2).padStart(5, "0");
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 TOTP, SHA-1, 6 digits, 30-second steps. */
function totp(secretBase32, unixSeconds = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac("sha1", base32Decode(secretBase32)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, "0");
}

/** The proof of work the server asks of a survivor device (see proto/src/pow.rs). */
function solvePow(challenge, bits) {
  const label = Buffer.from("quietline-pow-v1");
  const nonce = Buffer.alloc(8);
  for (let n = 0n; ; n++) {
    nonce.writeBigUInt64LE(n);
    const d = createHash("sha256").update(label).update(challenge).update(nonce).digest();
    let zeros = 0;
    for (const byte of d) {
      if (byte === 0) { zeros += 8; continue; }
      zeros += Math.clz32(byte) - 24;
      break;
    }
    if (zeros >= bits) return Number(n);
  }
}

async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
    srv.on("error", fail);
  });
}

// ------------------------------------------------------------------ the server

const dataDir = mkdtempSync(join(tmpdir(), "dashboard-test-"));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env = {
  ...process.env,
  QUIETLINE_DATA_DIR: dataDir,
  QUIETLINE_LISTEN: `127.0.0.1:${port}`,
  QUIETLINE_ADMIN_LISTEN: "",
  QUIETLINE_POW_BITS: "8",
  QUIETLINE_LOG_LEVEL: "warn",
};
const admin = (...args) => execFileSync(bin, ["admin", ...args], { env, encoding: "utf8" }).trim();
admin("org", "create", "--code", "safe-harbor", "--name", "Safe Harbor");
const anaToken = admin("member", "invite", "--org", "safe-harbor", "--handle", "ana", "--role", "advocate").split("\n")[0];
const supToken = admin("member", "invite", "--org", "safe-harbor", "--handle", "sam", "--role", "supervisor").split("\n")[0];

const server = spawn(bin, ["serve"], { env, stdio: ["ignore", "inherit", "inherit"] });
let browser;
async function cleanup() {
  await browser?.close().catch(() => undefined);
  server.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}

async function http(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text.trim()}`);
  return text.trim() ? JSON.parse(text) : null;
}

async function survivorOpens(options) {
  const ch = await http("POST", "/v1/devices/challenge");
  const challenge = b64url.decode(ch.challenge);
  const nonce = solvePow(challenge, ch.bits);
  const key = () => b64url.encode(randomBytes(32));
  const reg = await http("POST", "/v1/devices", {
    pow: { challenge: ch.challenge, nonce },
    keys: {
      identity_key: key(),
      signing_key: key(),
      identity_signature: b64url.encode(randomBytes(64)),
      signed_prekey: { id: 1, public_key: key(), signature: b64url.encode(randomBytes(64)) },
      one_time_prekeys: [],
    },
  });
  return http("POST", "/v1/orgs/safe-harbor/conversations", options, reg.tokens.access_token);
}

const step = (name) => console.log(`--- ${name}`);

try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {}
    if (i > 300) throw new Error("server did not become ready");
    await new Promise((r) => setTimeout(r, 100));
  }

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });

  // ---------------------------------------------------------------- the advocate
  step("advocate enrols from the invitation link");
  const advocate = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-GB" });
  const page = await advocate.newPage();
  const violations = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !/Content Security Policy/.test(m.text())) console.log(`browser: ${m.text()}`);
  });
  await page.goto(`${base}/app/#enrol=${anaToken}&org=safe-harbor&handle=ana`);
  await page.getByRole("heading", { name: "Set up your account" }).waitFor();
  assert.equal(new URL(page.url()).hash, "", "the token leaves the address bar at once");
  await page.screenshot({ path: join(shots, "enrol.png") });
  await page.getByLabel("Password (at least 12 characters)").fill("correct horse battery staple");
  await page.getByLabel("Repeat the password").fill("correct horse battery staple");
  await page.getByRole("button", { name: "Create my account" }).click();
  await page.getByRole("img", { name: "QR code with your sign-in secret" }).waitFor();
  const secret = (await page.getByTestId("totp-secret").textContent()).replace(/\s/g, "");
  assert.match(secret, /^[A-Z2-7]{16,}$/);
  await page.screenshot({ path: join(shots, "enrol-totp.png") });

  step("advocate signs in with password and TOTP");
  await page.getByRole("button", { name: "Continue to sign in" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await page.getByLabel("Organisation code").inputValue(), "safe-harbor");
  assert.equal(await page.getByLabel("Your handle").inputValue(), "ana");
  await page.getByLabel("Password", { exact: true }).fill("correct horse battery staple");
  await page.getByLabel("6-digit code from your authenticator app").fill("000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Those details did not work" }).waitFor();
  await page.getByLabel("6-digit code from your authenticator app").fill(totp(secret));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Nobody is waiting right now.").waitFor();
  await page.getByText("Off duty", { exact: true }).waitFor();
  await page.screenshot({ path: join(shots, "queue-off-duty.png") });

  step("advocate goes on duty and sees who waits, urgent first");
  await page.getByRole("button", { name: "Go on duty" }).click();
  await page.getByText("On duty", { exact: true }).waitFor();
  await survivorOpens({ urgent: false, language: "en" });
  const urgent = await survivorOpens({ urgent: true, language: "es" });
  assert.equal(urgent.queue_position, 1, "the urgent contact is seen first");
  await page.getByRole("button", { name: "Refresh" }).click();
  const waiting = page.getByRole("region", { name: "Waiting" }).getByRole("listitem");
  await waiting.nth(1).waitFor();
  assert.equal(await waiting.count(), 2);
  const first = await waiting.nth(0).innerText();
  assert.match(first, /Position 1/);
  assert.match(first, /Urgent/);
  assert.match(first, /Language: Spanish/);
  assert.match(await waiting.nth(1).innerText(), /Position 2[\s\S]*Language: English/);
  await page.screenshot({ path: join(shots, "queue.png") });

  step("advocate claims the urgent conversation");
  await page.getByRole("button", { name: "Claim — Position 1" }).click();
  await page.getByRole("status").filter({ hasText: "Claimed." }).waitFor();
  const mine = page.getByRole("region", { name: "Your conversations" }).getByRole("listitem");
  await mine.first().waitFor();
  assert.match(await mine.first().innerText(), /Urgent[\s\S]*Language: Spanish/);
  await waiting.nth(1).waitFor({ state: "detached" });
  assert.equal(await waiting.count(), 1);
  await page.screenshot({ path: join(shots, "queue-claimed.png") });

  step("the page refuses inline script");
  const inline = await page.evaluate(
    () =>
      new Promise((done) => {
        let violated = false;
        document.addEventListener("securitypolicyviolation", (e) => {
          if (e.violatedDirective.startsWith("script-src")) violated = true;
        });
        const s = document.createElement("script");
        s.textContent = "window.__inlineRan = true;";
        document.body.append(s);
        setTimeout(() => done({ ran: window.__inlineRan === true, violated }), 100);
      }),
  );
  assert.equal(inline.ran, false, "inline script must not run");
  assert.equal(inline.violated, true, "the browser reports the CSP violation");
  violations.push(inline);

  step("the dashboard speaks Spanish");
  await page.getByLabel("Language").selectOption("es");
  await page.getByRole("heading", { name: "En espera" }).waitFor();
  await page.getByRole("button", { name: "Terminar guardia" }).waitFor();
  await page.screenshot({ path: join(shots, "queue-es.png") });
  await page.getByLabel("Idioma").selectOption("en");

  step("keyboard focus is visible");
  await page.getByLabel("Language").focus();
  await page.keyboard.press("Tab");
  const focus = await page.evaluate(() => ({
    name: document.activeElement?.textContent,
    visible: document.activeElement?.matches(":focus-visible"),
    outline: getComputedStyle(document.activeElement).outlineStyle,
  }));
  assert.equal(focus.name, "Sign out");
  assert.equal(focus.visible, true);
  assert.notEqual(focus.outline, "none", "a focused control shows an outline");

  // ---------------------------------------------------------------- the supervisor
  step("a supervisor invites a member and changes the settings");
  const enrolled = await http("POST", "/v1/auth/enroll", { token: supToken, password: "another long passphrase" });
  const supSecret = new URL(enrolled.totp_uri).searchParams.get("secret");
  const supervisor = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-GB" });
  const sp = await supervisor.newPage();
  await sp.goto(`${base}/app/`);
  await sp.getByLabel("Organisation code").fill("safe-harbor");
  await sp.getByLabel("Your handle").fill("sam");
  await sp.getByLabel("Password", { exact: true }).fill("another long passphrase");
  await sp.getByLabel("6-digit code from your authenticator app").fill(totp(supSecret));
  await sp.getByRole("button", { name: "Sign in" }).click();
  await sp.getByRole("link", { name: "Invite" }).click();
  await sp.getByLabel("Handle (letters, digits, . _ -)").fill("cy");
  await sp.getByLabel("Role").selectOption("advocate");
  await sp.getByRole("button", { name: "Create invitation" }).click();
  const link = await sp.getByTestId("invite-link").inputValue();
  assert.match(link, new RegExp(`^${base}/app/#enrol=[A-Za-z0-9_-]{43}&org=safe-harbor&handle=cy$`));
  await sp.screenshot({ path: join(shots, "invite.png") });

  await sp.getByRole("link", { name: "Settings" }).click();
  const ooh = sp.getByLabel("Message for survivors when nobody is on duty");
  await ooh.waitFor();
  await ooh.fill("We are back at 8 in the morning. If you are in danger, call 112.");
  await sp.getByLabel("Delete a conversation as soon as it is closed").uncheck();
  await sp.getByRole("button", { name: "Save settings" }).click();
  await sp.getByRole("status").filter({ hasText: "Settings saved." }).waitFor();
  await sp.screenshot({ path: join(shots, "settings.png") });
  await sp.getByLabel("Keep undelivered messages for (hours)").fill("1000000");
  await sp.getByRole("button", { name: "Save settings" }).click();
  await sp.getByRole("alert").filter({ hasText: "outside what this server allows" }).waitFor();
  await sp.getByRole("link", { name: "Queue" }).click();
  await sp.getByRole("link", { name: "Settings" }).click();
  await sp.getByLabel("Message for survivors when nobody is on duty").waitFor();
  assert.equal(
    await sp.getByLabel("Message for survivors when nobody is on duty").inputValue(),
    "We are back at 8 in the morning. If you are in danger, call 112.",
  );
  assert.equal(await sp.getByLabel("Delete a conversation as soon as it is closed").isChecked(), false);

  step("the invited member's link opens enrolment");
  const cy = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const cp = await cy.newPage();
  await cp.goto(link);
  await cp.getByRole("heading", { name: "Set up your account" }).waitFor();
  console.log("dashboard browser test: ok");
} finally {
  await cleanup();
}
