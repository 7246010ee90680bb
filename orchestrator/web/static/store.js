// What this browser keeps (localStorage), as the reference UI does: the sessions and
// rooms it created or joined, their tokens, the user's own model API key (sent only
// in create bodies) and a display name. Nothing here comes from the server's secrets.

const KEYS = {
  sessions: "orchestrator:sessions",
  sessionTokens: "orchestrator:session-tokens",
  rooms: "orchestrator:rooms",
  roomTokens: "orchestrator:room-tokens",
  apiKey: "orchestrator:anthropic-api-key",
  name: "orchestrator:participant-name",
  participantId: "orchestrator:participant-id",
};

function read(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key));
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function write(key, value) {
  localStorage.setItem(key, JSON.stringify(value));
}

export const store = {
  sessions() {
    return read(KEYS.sessions, []);
  },
  addSession(id, token, meta = {}) {
    const tokens = read(KEYS.sessionTokens, {});
    tokens[id] = token;
    write(KEYS.sessionTokens, tokens);
    if (meta.listed === false) return;
    const sessions = this.sessions().filter((s) => s.id !== id);
    sessions.unshift({ id, description: meta.description ?? "", createdAt: new Date().toISOString() });
    write(KEYS.sessions, sessions);
  },
  sessionToken(id) {
    return read(KEYS.sessionTokens, {})[id] ?? null;
  },
  forgetSession(id) {
    const tokens = read(KEYS.sessionTokens, {});
    delete tokens[id];
    write(KEYS.sessionTokens, tokens);
    write(KEYS.sessions, this.sessions().filter((s) => s.id !== id));
  },

  rooms() {
    return read(KEYS.rooms, []);
  },
  addRoom(id, token, meta = {}) {
    const tokens = read(KEYS.roomTokens, {});
    tokens[id] = token;
    write(KEYS.roomTokens, tokens);
    const rooms = this.rooms().filter((r) => r.id !== id);
    rooms.unshift({ id, name: meta.name ?? "", code: meta.code ?? "" });
    write(KEYS.rooms, rooms);
  },
  roomToken(id) {
    return read(KEYS.roomTokens, {})[id] ?? null;
  },
  forgetRoom(id) {
    const tokens = read(KEYS.roomTokens, {});
    delete tokens[id];
    write(KEYS.roomTokens, tokens);
    write(KEYS.rooms, this.rooms().filter((r) => r.id !== id));
  },

  apiKey() {
    return localStorage.getItem(KEYS.apiKey) ?? "";
  },
  setApiKey(value) {
    if (value) localStorage.setItem(KEYS.apiKey, value);
    else localStorage.removeItem(KEYS.apiKey);
  },
  name() {
    return localStorage.getItem(KEYS.name) ?? "";
  },
  setName(value) {
    if (value) localStorage.setItem(KEYS.name, value);
    else localStorage.removeItem(KEYS.name);
  },
  participantId() {
    let id = localStorage.getItem(KEYS.participantId);
    if (!id) {
      id = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
      localStorage.setItem(KEYS.participantId, id);
    }
    return id;
  },
};
