// Starts the npm reference server (@durable-streams/server) on 127.0.0.1 and prints
// one line "READY <url>" once it listens, so a parent process can read the port.
//
// Environment:
//   PORT         port to listen on; 0 (the default) picks a free one
//   LONGPOLL_MS  long-poll timeout in milliseconds (server default: 30000)
//   DATA_DIR     file-backed (LMDB) storage in this directory; in-memory when unset
//   WEBHOOKS     "1" or "true" enables webhook subscriptions
//   EXIT_ON_STDIN_CLOSE  "1": stop when stdin reaches end of file (the parent died)
import { DurableStreamTestServer } from "@durable-streams/server"

function envInt(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  if (!/^\d+$/.test(raw)) {
    console.error(`start-ref: ${name} must be a non-negative integer, got ${JSON.stringify(raw)}`)
    process.exit(2)
  }
  return Number(raw)
}

const truthy = (name) => ["1", "true", "yes"].includes((process.env[name] ?? "").toLowerCase())

const opts = { host: "127.0.0.1", port: envInt("PORT", 0) }
const longPoll = envInt("LONGPOLL_MS", undefined)
if (longPoll !== undefined) opts.longPollTimeout = longPoll
if (process.env.DATA_DIR) opts.dataDir = process.env.DATA_DIR
if (truthy("WEBHOOKS")) opts.webhooks = true

const server = new DurableStreamTestServer(opts)
const url = await server.start()
console.log(`READY ${url}`)

let stopping = false
async function shutdown(code) {
  if (stopping) return
  stopping = true
  // Open SSE and long-poll responses can hold server.close() up; do not wait for ever.
  setTimeout(() => process.exit(code), 3000).unref()
  try {
    await server.stop()
  } catch (err) {
    console.error("start-ref: stop failed:", err)
  }
  process.exit(code)
}

process.on("SIGTERM", () => void shutdown(0))
process.on("SIGINT", () => void shutdown(0))
if (truthy("EXIT_ON_STDIN_CLOSE")) {
  process.stdin.on("end", () => void shutdown(0))
  process.stdin.on("error", () => void shutdown(0))
  process.stdin.resume()
}
