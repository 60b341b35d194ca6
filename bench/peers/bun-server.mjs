// Bun's built-in WebSocket server (uWebSockets inside), as its documentation writes one.
// `--mode echo` sends every message back to its sender; `--mode fanout` subscribes each
// connection to the topic named by its path and sends every message to the topic with
// `server.publish`, the sender included, as wsecho's broadcast mode does.
//
// usage: bun bun-server.mjs [--mode echo|fanout] [--port PORT]
const flag = (name, otherwise) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : otherwise;
};
const mode = flag("--mode", "echo");
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(flag("--port", "0")),
  fetch(request, server) {
    const topic = new URL(request.url).pathname;
    if (server.upgrade(request, { data: { topic } })) return;
    return new Response("a WebSocket server", { status: 426 });
  },
  websocket: {
    // The same as wsecho's defaults where they differ: no compression, 64 MiB messages,
    // and no idle timeout (wsecho pings instead).
    perMessageDeflate: false,
    maxPayloadLength: 64 * 1024 * 1024,
    idleTimeout: 0,
    open(ws) {
      if (mode === "fanout") ws.subscribe(ws.data.topic);
    },
    message(ws, message) {
      if (mode === "fanout") server.publish(ws.data.topic, message);
      else ws.send(message);
    },
  },
});
console.error(`listening on ws://127.0.0.1:${server.port}`);
