// End-to-end tests of client.html in a real browser (headless Chromium, driven by
// playwright-core) against real wsecho processes on loopback ports.
//
// Run: npm test (in this directory), after `cargo build --release` at the repo root.
// WSECHO_BIN overrides the server binary; CHROMIUM the browser (default /usr/bin/chromium).
// Each scenario saves a screenshot in screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { createHash, X509Certificate } from "node:crypto";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const serverBinary = process.env.WSECHO_BIN ?? join(repo, "target/release/wsecho");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshots = join(here, "screenshots");
const clientFile = pathToFileURL(join(repo, "client.html")).href;
const WAIT = 15_000; // ms; generous upper bound for anything awaited

let browser;
const servers = new Set();

/** Starts wsecho on 127.0.0.1 and resolves once it logs the port it listens on. */
function startServer(args = [], port = 0) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(serverBinary, ["--host", "127.0.0.1", "--port", String(port), ...args], {
      env: { ...process.env, RUST_LOG: "info" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    servers.add(child);
    let log = "";
    const timer = setTimeout(() => reject(new Error("wsecho did not start:\n" + log)), WAIT);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = log.match(/listening on wss?:\/\/127\.0\.0\.1:(\d+)/);
      if (match && !child.port) {
        child.port = Number(match[1]);
        clearTimeout(timer);
        resolvePromise(child);
      }
    });
    child.on("exit", (code) => {
      servers.delete(child);
      child.exitCode_ = code;
      if (!child.port) {
        clearTimeout(timer);
        reject(new Error(`wsecho exited with ${code}:\n${log}`));
      }
    });
  });
}

/** Sends SIGTERM and waits for the process to exit; resolves to its exit code. */
function stopServer(child) {
  return new Promise((resolvePromise) => {
    if (child.exitCode !== null) return resolvePromise(child.exitCode);
    child.once("exit", (code) => resolvePromise(code));
    child.kill("SIGTERM");
  });
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  return page;
}

const state = (page) => page.locator("#state");
const received = (page) => page.locator("#log li.received");

async function sendWithEnter(page, text) {
  await page.locator("#message").fill(text);
  await page.locator("#message").press("Enter");
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(screenshots, name + ".png") });
}

before(async () => {
  mkdirSync(screenshots, { recursive: true });
  // playwright gives every launch a fresh, empty profile directory of its own.
  browser = await chromium.launch({
    executablePath: browserPath,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const child of servers) child.kill("SIGKILL");
});

test("served at /, the page connects by itself, shows the welcome and the reply", async () => {
  const server = await startServer();
  const page = await newPage();
  await page.goto(`http://127.0.0.1:${server.port}/`);
  await assert.doesNotReject(state(page).filter({ hasText: /^open$/ }).waitFor());
  assert.equal(await page.locator("#url").inputValue(), `ws://127.0.0.1:${server.port}/`);
  await received(page).filter({ hasText: "Welcome to the WebSocket server!" }).waitFor();
  await sendWithEnter(page, "hello");
  await received(page).filter({ hasText: 'Hello from server, you said: "hello"' }).waitFor();
  assert.equal(await page.locator("#log li.sent").last().innerText().then((t) => t.endsWith("hello")), true);
  assert.equal(await page.locator("#message").inputValue(), "", "the input is cleared after sending");
  // An empty message is a message too: the server answers it.
  await page.locator("#message").press("Enter");
  await received(page).filter({ hasText: 'Hello from server, you said: ""' }).waitFor();
  await screenshot(page, "1-served-echo");
  // Readable on a phone-width screen: nothing sticks out sideways.
  await page.setViewportSize({ width: 360, height: 640 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 360px screen`);
  await screenshot(page, "1b-phone-width");
  await page.context().close();
  assert.equal(await stopServer(server), 0);
});

test("with ?protocols=, the page offers them and shows the one the server chose", async () => {
  const server = await startServer(["--subprotocol", "chat"]);
  const page = await newPage();
  await page.goto(`http://127.0.0.1:${server.port}/?protocols=mqtt,%20chat`);
  assert.equal(await page.locator("#protocols").inputValue(), "mqtt, chat");
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  await page.locator("#log li.system").filter({ hasText: "(subprotocol chat)" }).waitFor();
  await sendWithEnter(page, "over chat");
  await received(page).filter({ hasText: 'you said: "over chat"' }).waitFor();
  await screenshot(page, "1c-subprotocol");
  await page.context().close();
  assert.equal(await stopServer(server), 0);
});

test("served over https, the page connects to wss:// on the same host", async () => {
  const certFile = join(mkdtempSync(join(tmpdir(), "wsecho-cert-")), "cert.pem");
  const server = await startServer(["--tls-self-signed", "--tls-cert-out", certFile]);
  // Trust exactly this certificate's key (its SPKI hash), not every certificate error.
  const spki = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: "spki", format: "der" });
  const spkiHash = createHash("sha256").update(spki).digest("base64");
  const tlsBrowser = await chromium.launch({
    executablePath: browserPath,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      `--ignore-certificate-errors-spki-list=${spkiHash}`,
    ],
  });
  try {
    const context = await tlsBrowser.newContext({ viewport: { width: 900, height: 600 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    await page.goto(`https://localhost:${server.port}/`);
    await state(page).filter({ hasText: /^open$/ }).waitFor();
    assert.equal(await page.locator("#url").inputValue(), `wss://localhost:${server.port}/`);
    await received(page).filter({ hasText: "Welcome to the WebSocket server!" }).waitFor();
    await sendWithEnter(page, "secure");
    await received(page).filter({ hasText: 'Hello from server, you said: "secure"' }).waitFor();
    await screenshot(page, "1d-https");
  } finally {
    await tlsBrowser.close();
  }
  assert.equal(await stopServer(server), 0);
});

test("opened from file:// with ?url=, it talks to that server", async () => {
  const server = await startServer();
  const page = await newPage();
  await page.goto(`${clientFile}?url=ws://127.0.0.1:${server.port}`);
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  await received(page).filter({ hasText: "Welcome to the WebSocket server!" }).waitFor();
  await sendWithEnter(page, "hello");
  await received(page).filter({ hasText: 'Hello from server, you said: "hello"' }).waitFor();
  // Shift+Enter adds a line instead of sending; the multi-line message then goes as one.
  await page.locator("#message").fill("two");
  await page.locator("#message").press("Shift+Enter");
  await page.locator("#message").pressSequentially("lines");
  assert.equal(await page.locator("#message").inputValue(), "two\nlines");
  await page.locator("#send").click();
  await received(page).filter({ hasText: 'you said: "two\nlines"' }).waitFor();
  await screenshot(page, "2-file-url");
  await page.context().close();
  await stopServer(server);
});

test("when the server stops the page shows 1001, then reconnects when it is back", async () => {
  const server = await startServer();
  const port = server.port;
  const page = await newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  await received(page).filter({ hasText: "Welcome to the WebSocket server!" }).waitFor();
  assert.equal(await stopServer(server), 0);
  await state(page).filter({ hasText: /closed \(code 1001/ }).waitFor();
  await screenshot(page, "3a-server-stopped");
  const again = await startServer([], port);
  // The page retries with backoff; it must find the new server without help.
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  await assert.doesNotReject(
    received(page).filter({ hasText: "Welcome to the WebSocket server!" }).nth(1).waitFor());
  await sendWithEnter(page, "back again");
  await received(page).filter({ hasText: 'you said: "back again"' }).waitFor();
  await screenshot(page, "3b-reconnected");
  await page.context().close();
  await stopServer(again);
});

test("broadcast mode: pages in a room see each other, another room sees nothing", async () => {
  const server = await startServer(["--mode", "broadcast"]);
  const base = `http://127.0.0.1:${server.port}`;
  const [alice, bob, carol] = [await newPage(), await newPage(), await newPage()];
  await alice.goto(`${base}/team-a`);
  await bob.goto(`${base}/team-a`);
  await carol.goto(`${base}/team-b`);
  for (const page of [alice, bob, carol]) {
    await received(page).filter({ hasText: "Welcome to the WebSocket server!" }).waitFor();
  }
  await sendWithEnter(alice, "hi from alice");
  await received(bob).filter({ hasText: "hi from alice" }).waitFor();
  await received(alice).filter({ hasText: "hi from alice" }).waitFor();
  await sendWithEnter(bob, "hi from bob");
  await received(alice).filter({ hasText: "hi from bob" }).waitFor();
  // Carol's own message reaches her; had team-a's crossed over, they would be there first.
  await sendWithEnter(carol, "carol here");
  await received(carol).filter({ hasText: "carol here" }).waitFor();
  assert.deepEqual(await received(carol).allInnerTexts().then((all) => all.map((t) => t.split("←")[1]?.trim())),
    ["Welcome to the WebSocket server!", "carol here"]);
  await screenshot(alice, "4a-broadcast-alice");
  await screenshot(carol, "4b-broadcast-other-room");
  for (const page of [alice, bob, carol]) await page.context().close();
  await stopServer(server);
});

test("a message with HTML in it is shown as text and runs nothing", async () => {
  const server = await startServer();
  const page = await newPage();
  await page.goto(`http://127.0.0.1:${server.port}/`);
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  const attack = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>';
  await sendWithEnter(page, attack);
  await received(page).filter({ hasText: `you said: "${attack}"` }).waitFor();
  assert.equal(await page.locator("#log img, #log script").count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await screenshot(page, "5-html-as-text");
  await page.context().close();
  await stopServer(server);
});
