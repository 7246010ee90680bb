// The whole Durable Streams conformance suite, unmodified, against CONFORMANCE_TEST_URL.
//   CONFORMANCE_SUBSCRIPTIONS=1   also run the reserved subscription API tests
//   CONFORMANCE_LONGPOLL_MS=N     the server's long-poll timeout (the suite's default is 20000)
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("CONFORMANCE_TEST_URL must be set to the server's base URL")

const options = {
  baseUrl,
  subscriptions: process.env.CONFORMANCE_SUBSCRIPTIONS === "1",
}
const longPoll = process.env.CONFORMANCE_LONGPOLL_MS
if (longPoll) options.longPollTimeoutMs = Number(longPoll)

runConformanceTests(options)
