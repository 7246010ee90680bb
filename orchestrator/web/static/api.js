// The orchestrator's HTTP API, as the page uses it. Session routes take the session
// token (Authorization: Bearer), room routes the room token (X-Room-Token); event
// streams (EventSource cannot set headers) take it as ?token=.

import { store } from "./store.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const enc = encodeURIComponent;

async function call(method, path, { body, token, roomToken, participant } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  if (roomToken) headers["X-Room-Token"] = roomToken;
  if (participant && store.name()) {
    headers["X-Participant-Id"] = store.participantId();
    headers["X-Participant-Name"] = store.name();
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `The server did not answer (${err.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? `${response.status} ${response.statusText}`);
  }
  return data;
}

const session = (id) => `/api/sessions/${enc(id)}`;
const room = (id) => `/api/rooms/${enc(id)}`;
const sessionAuth = (id) => ({ token: store.sessionToken(id) });
const roomAuth = (id) => ({ roomToken: store.roomToken(id) });

export const api = {
  config: () => call("GET", "/api/config"),

  createSession: (body) => call("POST", "/api/sessions", { body }),
  session: (id) => call("GET", session(id), sessionAuth(id)),
  iterate: (id, request) =>
    call("POST", `${session(id)}/iterate`, { ...sessionAuth(id), body: { request } }),
  respond: (id, body) =>
    call("POST", `${session(id)}/respond`, { ...sessionAuth(id), body, participant: true }),
  cancel: (id) => call("POST", `${session(id)}/cancel`, sessionAuth(id)),
  interrupt: (id) => call("POST", `${session(id)}/interrupt`, sessionAuth(id)),
  files: (id) => call("GET", `${session(id)}/files`, sessionAuth(id)),
  fileContent: (id, path) =>
    call("GET", `${session(id)}/file-content?path=${enc(path)}`, sessionAuth(id)),
  appStatus: (id) => call("GET", `${session(id)}/app-status`, sessionAuth(id)),
  provisionElectric: (id) =>
    call("POST", "/api/provision-electric", { ...sessionAuth(id), body: { sessionId: id } }),
  sessionEventsUrl: (id) => `${session(id)}/events?token=${enc(store.sessionToken(id) ?? "")}`,

  createRoom: (body) => call("POST", "/api/rooms", { body }),
  joinRoom: (id, code) => call("GET", `/api/join-room/${enc(id)}/${enc(code)}`),
  room: (id) => call("GET", room(id), roomAuth(id)),
  addAgent: (id, body) => call("POST", `${room(id)}/agents`, { ...roomAuth(id), body }),
  postMessage: (id, body) => call("POST", `${room(id)}/messages`, { ...roomAuth(id), body }),
  respondRoom: (id, body) =>
    call("POST", `${room(id)}/respond`, { ...roomAuth(id), body, participant: true }),
  closeRoom: (id) => call("POST", `${room(id)}/close`, roomAuth(id)),
  roomEventsUrl: (id) => `${room(id)}/events?token=${enc(store.roomToken(id) ?? "")}`,
  participantEventsUrl: (id, sid) =>
    `${room(id)}/sessions/${enc(sid)}/events?token=${enc(store.roomToken(id) ?? "")}`,
};
