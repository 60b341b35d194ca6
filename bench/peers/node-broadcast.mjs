// Node `ws` broadcasting the way its README and the tutorials do: a loop over the server's
// clients for every message. Every connection joins the one room whatever its path.
//
// usage: node node-broadcast.mjs [--port PORT]
import { WebSocketServer, WebSocket } from "ws";

const portFlag = process.argv.indexOf("--port");
const port = portFlag > 0 ? Number(process.argv[portFlag + 1]) : 0;
const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
server.on("listening", () => {
  console.error(`listening on ws://127.0.0.1:${server.address().port}`);
});
server.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => {
    for (const client of server.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});
