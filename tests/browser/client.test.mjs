// End-to-end tests of client.html in a real browser (headless Chromium, driven by
// playwright-core) against real wsecho processes on loopback ports.
//
// Run: npm test (in this directory), after `cargo build --release` at the repo root.
// WSECHO_BIN overrides the server binary; CHROMIUM the browser (default /usr/bin/chromium).
// Each scenario saves a screenshot in screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
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
const docs = join(repo, "docs");
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

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 }, ...options });
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

/** A screenshot that, with UPDATE_DOCS=1, also replaces the README's copy in docs/. */
async function docScreenshot(page, name, docName) {
  await page.setViewportSize({ width: 1100, height: 720 });
  await screenshot(page, name);
  if (process.env.UPDATE_DOCS === "1") {
    copyFileSync(join(screenshots, name + ".png"), join(docs, docName + ".png"));
  }
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
  assert.equal(await page.locator("#log li.sent .body").last().innerText(), "hello");
  assert.equal(await page.locator("#message").inputValue(), "", "the input is cleared after sending");
  // An empty message is a message too: the server answers it.
  await page.locator("#message").press("Enter");
  await received(page).filter({ hasText: 'Hello from server, you said: ""' }).waitFor();
  await docScreenshot(page, "1-served-echo", "client");
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
  assert.deepEqual(await received(carol).locator(".body").allInnerTexts(),
    ["Welcome to the WebSocket server!", "carol here"]);
  await docScreenshot(alice, "4a-broadcast-alice", "client-broadcast");
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

// ---- The test-client features: composer, saved messages, repeat, log, round trips, panel ----

/** Opens the page served by a raw-mode wsecho (verbatim echo, no welcome) and waits for open. */
async function rawPage(extraArgs = [], options = {}) {
  const server = await startServer(["--mode", "raw", ...extraArgs]);
  const page = await newPage(options);
  await page.goto(`http://127.0.0.1:${server.port}/`);
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  return { server, page };
}

/** Chooses a format, fills the composer and sends with Ctrl+Enter. */
async function compose(page, format, text) {
  await page.locator("#format").selectOption(format);
  await page.locator("#message").fill(text);
  await page.locator("#message").press("Control+Enter");
}

test("JSON is validated and pretty-printed before sending; invalid JSON is refused", async () => {
  const { server, page } = await rawPage();
  await compose(page, "json", '{"op":"subscribe","channels":["a","b"],"n":1}');
  const pretty = JSON.stringify({ op: "subscribe", channels: ["a", "b"], n: 1 }, null, 2);
  assert.equal(await page.locator("#message").inputValue(), pretty, "the composer shows what was sent");
  const reply = received(page).first();
  await reply.waitFor();
  assert.equal(await reply.getAttribute("data-json"), "true");
  assert.equal(await reply.locator(".body").innerText(), pretty);
  assert.match(await reply.locator(".size").innerText(), new RegExp(`text, ${Buffer.byteLength(pretty)} bytes`));
  // Plain Enter in JSON adds a line rather than sending half a document.
  await page.locator("#message").fill('{"a":');
  await page.locator("#message").press("Enter");
  assert.equal(await page.locator("#log li.sent").count(), 1);
  await page.locator("#message").press("Control+Enter");
  await page.locator("#composer-error").filter({ hasText: /Not sent: invalid JSON/ }).waitFor();
  assert.equal(await page.locator("#log li.sent").count(), 1, "invalid JSON is not sent");
  await docScreenshot(page, "6-json", "client-composer");
  await page.context().close();
  await stopServer(server);
});

test("binary as hex and base64 goes out and comes back byte for byte; bad input names the position", async () => {
  const { server, page } = await rawPage();
  // In raw mode the server echoes exactly what it received, so the reply's bytes are the
  // server's view of the message.
  const bytes = Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
  const hex = bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
  await compose(page, "hex", hex);
  const reply = received(page).first();
  await reply.waitFor();
  assert.match(await reply.locator(".size").innerText(), /binary, 300 bytes/);
  // The preview shows the first 256 bytes; "Show all" shows the rest.
  const dump = (text) => text.split("\n").flatMap((line) => line.split(/\s+/).slice(1)).filter(Boolean).map((h) => parseInt(h, 16));
  assert.deepEqual(dump(await reply.locator(".body").innerText()), bytes.slice(0, 256));
  await reply.locator(".expand").click();
  assert.deepEqual(dump(await reply.locator(".body").innerText()), bytes);

  const base64 = Buffer.from(bytes).toString("base64");
  await compose(page, "base64", base64);
  await received(page).nth(1).waitFor();
  const exported = await page.evaluate(() => entries.filter((e) => e.direction === "received").map((e) => Array.from(e.data)));
  assert.deepEqual(exported, [bytes, bytes], "both replies are exactly the bytes sent");

  await compose(page, "hex", "0a 1b zz");
  await page.locator("#composer-error").filter({ hasText: 'not a hex digit: "z" at position 7' }).waitFor();
  await compose(page, "hex", "abc");
  await page.locator("#composer-error").filter({ hasText: "odd number of hex digits" }).waitFor();
  await compose(page, "base64", "aGVsbG8*");
  await page.locator("#composer-error").filter({ hasText: 'not base64: "*" at position 8' }).waitFor();
  assert.equal(await page.locator("#log li.sent").count(), 2, "nothing invalid was sent");
  await page.context().close();
  await stopServer(server);
});

test("saved messages survive a reload, send with one click, and can be deleted", async () => {
  const { server, page } = await rawPage();
  await page.locator("#format").selectOption("hex");
  await page.locator("#message").fill("de ad be ef");
  await page.locator("#save-name").fill("deadbeef");
  await page.locator("#save").click();
  await page.locator("#format").selectOption("text");
  await page.locator("#message").fill("ping");
  await page.locator("#save-name").fill("ping");
  await page.locator("#save").click();
  await page.reload();
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  assert.deepEqual(await page.locator("#saved .send-saved").allInnerTexts(), ["deadbeef", "ping"]);
  await page.locator("#saved .send-saved", { hasText: "deadbeef" }).click();
  await received(page).first().waitFor();
  assert.match(await received(page).first().locator(".size").innerText(), /binary, 4 bytes/);
  assert.equal((await received(page).first().locator(".body").innerText()).trim(), "00000000  de ad be ef");
  await page.locator("#saved .send-saved", { hasText: "ping" }).click();
  await received(page).filter({ hasText: "ping" }).waitFor();
  await page.getByRole("button", { name: "Delete deadbeef" }).click();
  await page.reload();
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  assert.deepEqual(await page.locator("#saved .send-saved").allInnerTexts(), ["ping"]);
  await page.context().close();
  await stopServer(server);
});

test("repeat sends exactly N; a timed repeat stops on disconnect", async () => {
  const { server, page } = await rawPage();
  await page.locator("#message").fill("again");
  await page.locator("#repeat-count").fill("25");
  await page.locator("#repeat-n").click();
  await page.locator("#repeat-counter").filter({ hasText: "sent 25 of 25" }).waitFor();
  await received(page).nth(24).waitFor();
  assert.equal(await page.locator("#log li.sent").count(), 25);
  // Nothing more arrives: exactly 25 went out and came back.
  await page.locator("#message").fill("marker");
  await page.locator("#message").press("Enter");
  await received(page).filter({ hasText: "marker" }).waitFor();
  assert.equal(await received(page).count(), 26);
  await page.locator("#info-sent").filter({ hasText: "26 messages" }).waitFor();

  await page.locator("#message").fill("tick");
  await page.locator("#repeat-interval").fill("20");
  await page.locator("#repeat-every").click();
  await page.locator("#repeat-counter").filter({ hasText: /sent ([3-9]|\d\d+)/ }).waitFor();
  await page.locator("#connect").click(); // Disconnect
  await state(page).filter({ hasText: /^closed/ }).waitFor();
  await page.locator("#repeat-counter").filter({ hasText: "(stopped)" }).waitFor();
  const sentThen = await page.locator("#log li.sent").count();
  await page.waitForTimeout(200);
  assert.equal(await page.locator("#log li.sent").count(), sentThen, "nothing is sent after the disconnect");
  assert.equal(await page.locator("#repeat-every").innerText(), "Start");
  await page.context().close();
  await stopServer(server);
});

test("the log filters by direction and search, copies an entry and exports JSON Lines", async () => {
  const { server, page } = await rawPage([], { acceptDownloads: true, permissions: ["clipboard-read", "clipboard-write"] });
  for (const text of ["alpha one", "beta two", "needle three"]) {
    await page.locator("#message").fill(text);
    await page.locator("#message").press("Enter");
  }
  await compose(page, "hex", "00 ff 10");
  await received(page).nth(3).waitFor();
  const visible = (selector) => page.locator(`#log li${selector}:not([hidden])`).count();
  assert.equal(await visible(".sent"), 4);
  await page.locator("#show-sent").uncheck();
  assert.equal(await visible(".sent"), 0);
  assert.equal(await visible(".received"), 4);
  await page.locator("#show-system").uncheck();
  assert.equal(await visible(".system"), 0);
  await page.locator("#show-sent").check();
  await page.locator("#search").fill("NEEDLE");
  assert.deepEqual(await page.locator("#log li:not([hidden]) .body").allInnerTexts(), ["needle three", "needle three"]);
  await page.locator("#search").fill("");
  await page.locator("#show-system").check();
  assert.equal(await visible(""), await page.locator("#log li").count());

  await page.locator("#log li.received", { hasText: "beta two" }).getByRole("button", { name: "Copy this entry" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "beta two");

  const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#export").click()]);
  const lines = readFileSync(await download.path(), "utf8").trim().split("\n").map((line) => JSON.parse(line));
  assert.equal(lines.length, await page.locator("#log li").count(), "one line per log entry");
  assert.deepEqual(lines.filter((l) => l.direction === "sent").map((l) => l.data ?? l.data_base64),
    ["alpha one", "beta two", "needle three", Buffer.from([0, 255, 16]).toString("base64")]);
  const binary = lines.find((l) => l.direction === "received" && l.type === "binary");
  assert.equal(binary.size, 3);
  assert.equal(binary.data_base64, "AP8Q");
  assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.time))));
  assert.ok(lines.some((l) => l.direction === "system" && l.data.startsWith("Connected to")));
  await page.context().close();
  await stopServer(server);
});

test("scrolling up pauses auto-scroll; back at the bottom it follows again", async () => {
  const { server, page } = await rawPage();
  await page.locator("#message").fill("line");
  await page.locator("#repeat-count").fill("60");
  await page.locator("#repeat-n").click();
  await received(page).nth(59).waitFor();
  const log = page.locator("#log");
  const position = () => log.evaluate((el) => ({ top: el.scrollTop, bottom: el.scrollHeight - el.clientHeight }));
  assert.ok((await position()).bottom > 0, "the log overflows");
  await log.evaluate((el) => { el.scrollTop = 0; });
  await page.locator("#message").fill("while reading old lines");
  await page.locator("#message").press("Enter");
  await received(page).filter({ hasText: "while reading old lines" }).waitFor();
  assert.equal((await position()).top, 0, "the view stays where the user scrolled");
  await log.evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.locator("#message").fill("following again");
  await page.locator("#message").press("Enter");
  await received(page).filter({ hasText: "following again" }).waitFor();
  const after = await position();
  assert.ok(after.bottom - after.top < 2, `at the bottom again: ${JSON.stringify(after)}`);
  await page.context().close();
  await stopServer(server);
});

test("echoes show their round-trip time and a live chart; the close panel names the code", async () => {
  const { server, page } = await rawPage(["--max-message-size", "1KiB"]);
  await page.locator("#message").fill("timed");
  await page.locator("#repeat-count").fill("40");
  await page.locator("#repeat-n").click();
  await received(page).nth(39).waitFor();
  const rtts = await page.locator("#log li.received .rtt").allInnerTexts();
  assert.equal(rtts.length, 40, "every echo is matched to the message it answers");
  assert.ok(rtts.every((t) => /^round trip \d+\.\d ms$/.test(t)), rtts[0]);
  await page.locator("#chart-caption").filter({ hasText: /Last 40 round trips: median/ }).waitFor();
  const points = await page.locator("#chart-line").getAttribute("points");
  assert.equal(points.trim().split(" ").length, 40);
  assert.equal(await page.locator("#info-protocol").innerText(), "none");
  assert.match(await page.locator("#info-uptime").innerText(), /^\d+ s$/);
  await docScreenshot(page, "7-round-trips", "client-log");

  await page.locator("#auto").uncheck();
  await page.locator("#message").fill("x".repeat(2000));
  await page.locator("#message").press("Enter");
  await page.locator("#info-close").filter({ hasText: /^1009 Message Too Big/ }).waitFor();
  await state(page).filter({ hasText: /closed \(code 1009/ }).waitFor();
  await docScreenshot(page, "8-close-panel", "client-close");
  await page.context().close();
  await stopServer(server);
});

test("with --history, a page joining a room marks the replayed messages", async () => {
  const server = await startServer(["--mode", "broadcast", "--history", "2"]);
  const base = `http://127.0.0.1:${server.port}`;
  const alice = await newPage();
  await alice.goto(`${base}/room`);
  await received(alice).filter({ hasText: "Welcome to the WebSocket server!" }).waitFor();
  for (const text of ["one", "two", "three"]) {
    await sendWithEnter(alice, text);
    await received(alice).locator(".body").filter({ hasText: new RegExp(`^${text}$`) }).waitFor();
  }
  const bob = await newPage();
  await bob.goto(`${base}/room`);
  await bob.locator("#log li.system").filter({ hasText: "The room's last 2 message(s) follow" }).waitFor();
  await received(bob).filter({ hasText: "three" }).waitFor();
  await sendWithEnter(alice, "four");
  await received(bob).filter({ hasText: "four" }).waitFor();
  assert.deepEqual(await received(bob).locator(".body").allInnerTexts(),
    ["Welcome to the WebSocket server!", "two", "three", "four"]);
  assert.deepEqual(await received(bob).locator(".replayed").count(), 2);
  assert.equal(await received(bob).filter({ hasText: "four" }).locator(".replayed").count(), 0,
    "a live message is not marked");
  await screenshot(bob, "4c-broadcast-history");
  for (const page of [alice, bob]) await page.context().close();
  await stopServer(server);
});

test("in broadcast mode the page does not take the room's messages for replies", async () => {
  const server = await startServer(["--mode", "broadcast"]);
  const page = await newPage();
  await page.goto(`http://127.0.0.1:${server.port}/room`);
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  await assert.doesNotReject(page.locator("#match-replies:not(:checked)").waitFor());
  await page.context().close();
  await stopServer(server);
});

test("a 10 MB message leaves the page responsive and is shown truncated, not cut", async () => {
  const { server, page } = await rawPage();
  const size = 10 * 1000 * 1000;
  await page.evaluate((n) => { document.getElementById("message").value = "y".repeat(n); }, size);
  await page.locator("#send").click();
  const reply = received(page).first();
  await reply.waitFor();
  assert.match(await reply.locator(".size").innerText(), new RegExp(`text, ${size} bytes`));
  await reply.locator(".note").filter({ hasText: /Display truncated: showing 20000 of 10000000/ }).waitFor();
  assert.equal(await page.evaluate(() => entries.at(-1).data.length), size, "the data is kept whole");
  // Still responsive: a click and a small echo go through promptly.
  const started = Date.now();
  await page.locator("#message").fill("after");
  await page.locator("#message").press("Enter");
  await received(page).filter({ hasText: "after" }).waitFor();
  assert.ok(Date.now() - started < 5000, `the page took ${Date.now() - started} ms to answer`);
  await page.context().close();
  await stopServer(server);
});

test("the page is self-contained, keyboard-usable, and readable dark and at 360 px", async () => {
  const html = readFileSync(join(repo, "client.html"), "utf8");
  assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i, "no external resources");
  assert.doesNotMatch(html, /@import|url\(\s*["']?https?:/i, "no external stylesheets or images");
  const server = await startServer(["--mode", "raw"]);
  const page = await newPage({ colorScheme: "dark" });
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(`${clientFile}?url=ws://127.0.0.1:${server.port}`);
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  assert.deepEqual(requests.filter((url) => !url.startsWith("file:") && !url.startsWith("ws:")), [],
    "opened from disk, the page fetches nothing");
  // Every control has a name a screen reader can say.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll("button, input, select, textarea")]
    .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim() || el.placeholder))
    .map((el) => el.id || el.outerHTML));
  assert.deepEqual(unnamed, []);
  // The keyboard alone: focus the composer, type, Ctrl+Enter.
  await page.locator("#message").focus();
  await page.keyboard.type("by keyboard");
  await page.keyboard.press("Control+Enter");
  await received(page).filter({ hasText: "by keyboard" }).waitFor();
  // Dark scheme: the browser's dark canvas with light text, and the page's dark palette.
  const dark = await page.evaluate(() => ({
    text: getComputedStyle(document.body).color,
    received: getComputedStyle(document.documentElement).getPropertyValue("--received").trim(),
  }));
  const brightness = dark.text.match(/\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b) / 765;
  assert.ok(brightness > 0.6, `text colour ${dark.text} on the dark canvas`);
  assert.equal(dark.received, "#6ee7b7");
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 360px screen`);
  await screenshot(page, "9-dark-phone");
  await page.context().close();
  await stopServer(server);
});

test("the Scenario panel builds the URL: inspect shows the handshake, a chosen close code by name, a refused upgrade explained", async () => {
  const server = await startServer();
  const page = await newPage();
  await page.goto(`http://127.0.0.1:${server.port}/`);
  await state(page).filter({ hasText: /^open$/ }).waitFor();
  await page.locator("#auto").uncheck();
  await page.locator("#scenario summary").click();

  // Inspect: the browser's own handshake, shown before the welcome.
  await page.locator("#sc-inspect").check();
  await page.locator("#sc-apply").click();
  await page.locator("#log li.system", { hasText: "The handshake as the server received it" }).waitFor();
  const description = received(page).filter({ hasText: '"wsecho": "inspect"' });
  await description.waitFor();
  const text = await description.textContent();
  assert.match(text, /User-Agent/i, "the browser's headers are listed");
  assert.match(text, /"path": "\/"/);
  assert.match(await page.locator("#url").inputValue(), /[?&]inspect=1/);
  await screenshot(page, "6a-scenario-inspect");

  // A close code chosen by name comes back, and the panel names it.
  await page.locator("#sc-inspect").uncheck();
  await page.locator("#sc-close").selectOption("1011");
  await page.locator("#sc-reason").fill("chosen by the test");
  await page.locator("#sc-apply").click();
  await page.locator("#info-close", { hasText: "1011 Internal Error: chosen by the test" }).waitFor();
  await screenshot(page, "6b-scenario-close");

  // A refused upgrade: the browser sees 1006; the page says what the server did.
  await page.locator("#sc-close").selectOption("");
  await page.locator("#sc-status").selectOption("503");
  await page.locator("#sc-apply").click();
  await page.locator("#log li.system", { hasText: "refused the upgrade with HTTP 503" }).waitFor();
  assert.equal(await page.locator("#info-close").textContent(), "1006 Abnormal Closure");
  await screenshot(page, "6c-scenario-refused");
  await page.context().close();
  await stopServer(server);
});
