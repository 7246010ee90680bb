// The orchestrator's web UI: sessions, their live timelines and gates, rooms. Plain
// ES modules, hash routes:
//   #/                          sessions: create one, the list of this browser's
//   #/session/<id>              a session: timeline, gates, files, app preview
//   #/rooms                     rooms: create one, the list, join by invite link
//   #/room/<id>[/session/<sid>] a room: timeline, participants, agents' gates
//   #/join/<roomId>/<code>      an invite link: trades the code for the room token

import { api } from "./api.js";
import { append, clear, formatCost, h, shorten } from "./dom.js";
import { GateBoard } from "./gates.js";
import { LiveStream } from "./live.js";
import { store } from "./store.js";
import { RoomTimeline, SessionTimeline, todoList } from "./timeline.js";

const root = document.getElementById("app");
const ROLES = ["coder", "reviewer", "ui-designer", "custom"];
const MAX_WATCHED = 4; // participant streams a room view follows (browsers allow 6 connections)
const SESSION_POLL_MS = 2000;
const ROOM_POLL_MS = 3000;

function every(ms, fn) {
  fn();
  const timer = setInterval(fn, ms);
  return () => clearInterval(timer);
}

function badge(text, testid) {
  return h("span", { class: `badge status-${text}`, testid }, text);
}

function setBadge(el, text) {
  el.textContent = text;
  el.className = `badge status-${text}`;
}

function errorLine(testid = "form-error") {
  return h("p", { class: "error", testid, role: "alert" });
}

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 200;
}

function follow(fn) {
  const stick = nearBottom();
  fn();
  if (stick) window.scrollTo(0, document.body.scrollHeight);
}

function httpUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

// -- sessions ------------------------------------------------------------------------

function homeView() {
  const error = errorLine("session-create-error");
  const description = h("textarea", {
    name: "description",
    rows: 4,
    required: true,
    maxlength: 10000,
    placeholder: "What should the agent do?",
    testid: "session-description",
  });
  const freeform = h("input", { type: "checkbox", testid: "session-freeform" });
  const askTools = h("input", { type: "checkbox", testid: "session-ask-tools" });
  const create = h("button", { type: "submit", class: "primary", testid: "session-create" }, "Start session");
  const form = h(
    "form",
    { class: "stack" },
    description,
    h("label", { class: "check" }, freeform, "Freeform: send the description as the prompt (no setup choice)"),
    h("label", { class: "check" }, askTools, "Ask me before the agent runs a tool"),
    h("div", { class: "row" }, create),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const text = description.value.trim();
    if (!text) {
      error.textContent = "Describe what the agent should do.";
      return;
    }
    create.disabled = true;
    try {
      const body = { description: text, freeform: freeform.checked, askTools: askTools.checked };
      if (store.apiKey()) body.apiKey = store.apiKey();
      const created = await api.createSession(body);
      store.addSession(created.sessionId, created.sessionToken, { description: text });
      location.hash = `#/session/${created.sessionId}`;
    } catch (err) {
      error.textContent = err.message;
      create.disabled = false;
    }
  });

  const rows = h("tbody");
  const table = h(
    "table",
    { class: "list", testid: "session-list" },
    h("thead", {}, h("tr", {}, h("th", {}, "Session"), h("th", {}, "Status"), h("th", {}, "Cost"), h("th", {}, ""))),
    rows,
  );
  const empty = h("p", { class: "muted", testid: "session-list-empty" }, "No sessions in this browser yet.");
  const lines = new Map();
  const refresh = async () => {
    const sessions = store.sessions();
    empty.hidden = sessions.length > 0;
    table.hidden = sessions.length === 0;
    for (const [id, line] of lines) {
      if (!sessions.some((s) => s.id === id)) {
        line.row.remove();
        lines.delete(id);
      }
    }
    for (const s of sessions) {
      let line = lines.get(s.id);
      if (!line) {
        const status = badge("…", "session-row-status");
        const cost = h("span", { testid: "session-row-cost" }, "");
        const flag = h("span", { class: "flag", hidden: true, title: "waiting for you" }, "⚑ needs input");
        const forget = h("button", { class: "link", title: "Forget this session in this browser" }, "forget");
        forget.addEventListener("click", () => {
          store.forgetSession(s.id);
          refresh();
        });
        const row = h(
          "tr",
          { testid: "session-row", dataset: { sessionId: s.id } },
          h("td", {}, h("a", { href: `#/session/${s.id}`, testid: "session-link" }, shorten(s.description || s.id, 90)), " ", flag),
          h("td", {}, status),
          h("td", {}, cost),
          h("td", {}, forget),
        );
        line = { row, status, cost, flag };
        lines.set(s.id, line);
      }
      rows.append(line.row); // keeps the stored order
      api.session(s.id).then(
        (info) => {
          setBadge(line.status, info.status);
          line.cost.textContent = formatCost(info.totalCostUsd);
          line.flag.hidden = !info.needsInput;
        },
        (err) => setBadge(line.status, err.status === 404 ? "gone" : "unknown"),
      );
    }
  };
  const stop = every(3000, refresh);
  append(root, [
    h("section", { class: "card", testid: "new-session" }, h("h2", {}, "New session"), form),
    h("section", { class: "card" }, h("h2", {}, "Your sessions"), empty, table),
    settingsCard(),
  ]);
  return stop;
}

function settingsCard() {
  const key = h("input", { type: "password", autocomplete: "off", placeholder: "sk-…", testid: "settings-api-key", value: store.apiKey() });
  const name = h("input", { placeholder: "Your name (shown on answers and messages)", testid: "settings-name", value: store.name(), maxlength: 64 });
  const saved = h("span", { class: "muted", role: "status" });
  const save = h("button", { type: "submit", testid: "settings-save" }, "Save");
  const form = h(
    "form",
    { class: "stack" },
    h("label", {}, "Model API key (optional; kept in this browser, sent only when you create a session or agent)", key),
    h("label", {}, "Display name", name),
    h("div", { class: "row" }, save, saved),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    store.setApiKey(key.value.trim());
    store.setName(name.value.trim());
    saved.textContent = "Saved.";
  });
  return h("details", { class: "card", testid: "settings" }, h("summary", {}, "Settings"), form);
}

function sessionView(id) {
  if (!store.sessionToken(id)) {
    append(root, h("section", { class: "card" }, h("h2", {}, "Unknown session"), h("p", {}, "This browser holds no token for this session. "), h("a", { href: "#/" }, "← Sessions")));
    return () => {};
  }
  const stops = [];
  const title = h("h2", { testid: "session-title" }, "Session");
  const status = badge("…", "session-status");
  const cost = h("span", { class: "cost", testid: "session-cost", title: "cost so far" }, "$0.00");
  const streamState = h("span", { class: "stream-state", testid: "stream-state" }, "connecting");
  const flag = h("span", { class: "flag", hidden: true, testid: "needs-input" }, "⚑ waiting for you");
  const appStatus = h("span", { class: "muted", testid: "app-status" });
  const preview = h("a", { target: "_blank", rel: "noopener noreferrer", hidden: true, testid: "preview-link" }, "Open preview");
  const checkApp = h("button", { class: "link", testid: "app-status-check" }, "app status");
  const cancel = h("button", { class: "danger small", testid: "session-cancel" }, "Cancel session");
  let spent = 0;
  const showCost = (usd) => {
    if (Number.isFinite(Number(usd)) && Number(usd) >= spent) spent = Number(usd);
    cost.textContent = formatCost(spent);
  };
  const showApp = (info) => {
    const running = info.running ?? info.status === "running";
    appStatus.textContent = running ? `app running${info.port ? ` on port ${info.port}` : ""}` : "app not running";
    const url = httpUrl(info.previewUrl);
    preview.hidden = !url;
    if (url) preview.href = url;
  };
  checkApp.addEventListener("click", () => api.appStatus(id).then(showApp, (err) => (appStatus.textContent = err.message)));
  cancel.addEventListener("click", async () => {
    if (!confirm("Cancel this session? Its sandbox is removed.")) return;
    try {
      await api.cancel(id);
    } catch (err) {
      appStatus.textContent = err.message;
    }
  });

  // timeline and gates
  const gatesEl = h("div", { class: "gates", testid: "gates" });
  const timelineEl = h("div", { class: "timeline", testid: "timeline" });
  const todosEl = h("div", { testid: "todos" }, h("p", { class: "muted" }, "No todo list yet."));
  const gates = new GateBoard(gatesEl, {
    respond: (sid, body) => api.respond(sid, body),
    provision: (sid) => api.provisionElectric(sid),
  });
  let needsInput = false;
  const showFlag = () => {
    flag.hidden = !(needsInput || gates.size > 0);
  };
  const timeline = new SessionTimeline(timelineEl, {
    onCost: showCost,
    onTodos: (todos) => todosEl.replaceChildren(todoList(todos)),
    onAppStatus: showApp,
  });
  const stream = new LiveStream(
    api.sessionEventsUrl(id),
    (event, eventId, key) =>
      follow(() => {
        timeline.add(event, eventId, key);
        gates.feed(id, event);
        showFlag();
      }),
    (state) => {
      streamState.textContent = state;
      streamState.dataset.state = state;
    },
  ).start();
  stops.push(() => stream.close(), () => gates.clear());

  stops.push(
    every(SESSION_POLL_MS, async () => {
      try {
        const info = await api.session(id);
        title.textContent = shorten(info.description || info.projectName || id, 120);
        title.title = info.description ?? "";
        setBadge(status, info.status);
        needsInput = Boolean(info.needsInput);
        showFlag();
        showCost(info.totalCostUsd);
      } catch (err) {
        setBadge(status, err.status === 404 ? "gone" : "unknown");
      }
    }),
  );

  // follow-up messages
  const input = h("textarea", { rows: 2, placeholder: "Send the agent a message…", testid: "iterate-input", maxlength: 10000 });
  const send = h("button", { type: "submit", class: "primary", testid: "iterate-send" }, "Send");
  const sendError = errorLine("iterate-error");
  const composer = h("form", { class: "composer" }, input, send);
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send.disabled = true;
    sendError.textContent = "";
    try {
      await api.iterate(id, text);
      input.value = "";
    } catch (err) {
      sendError.textContent = err.message;
    } finally {
      send.disabled = false;
    }
  });

  // files
  const fileList = h("ul", { class: "files", testid: "file-list" });
  const viewerName = h("div", { class: "muted", testid: "file-viewer-name" }, "Pick a file.");
  const viewer = h("pre", { class: "viewer", testid: "file-viewer" });
  const refreshFiles = h("button", { class: "small", testid: "files-refresh" }, "Refresh");
  const loadFiles = async () => {
    fileList.replaceChildren(h("li", { class: "muted" }, "Loading…"));
    try {
      const { files, prefix } = await api.files(id);
      const base = prefix ? `${prefix.replace(/\/$/, "")}/` : "";
      fileList.replaceChildren(
        ...(files.length ? [] : [h("li", { class: "muted" }, "No files (yet).")]),
        ...files.map((path) => {
          const rel = path.startsWith(base) ? path.slice(base.length) : path;
          const button = h("button", { class: "link file", testid: "file-entry", dataset: { path: rel } }, rel);
          button.addEventListener("click", async () => {
            for (const b of fileList.querySelectorAll(".file")) b.classList.toggle("selected", b === button);
            viewerName.textContent = rel;
            viewer.textContent = "Loading…";
            try {
              viewer.textContent = (await api.fileContent(id, rel)).content;
            } catch (err) {
              viewer.textContent = err.message;
            }
          });
          return h("li", {}, button);
        }),
      );
    } catch (err) {
      fileList.replaceChildren(h("li", { class: "error" }, err.message));
    }
  };
  refreshFiles.addEventListener("click", loadFiles);
  const filesPane = h(
    "section",
    { class: "card files-pane", hidden: true, testid: "files-pane" },
    h("div", { class: "files-grid" }, h("div", {}, h("div", { class: "row" }, h("strong", {}, "Files"), refreshFiles), fileList), h("div", {}, viewerName, viewer)),
  );

  const timelinePane = h(
    "div",
    { class: "columns" },
    h("div", { class: "main" }, timelineEl, gatesEl, composer, sendError),
    h("aside", {}, h("section", { class: "card" }, h("h3", {}, "Todos"), todosEl)),
  );
  const tabTimeline = h("button", { class: "tab selected", testid: "tab-timeline" }, "Timeline");
  const tabFiles = h("button", { class: "tab", testid: "tab-files" }, "Files");
  tabTimeline.addEventListener("click", () => {
    timelinePane.hidden = false;
    filesPane.hidden = true;
    tabTimeline.classList.add("selected");
    tabFiles.classList.remove("selected");
  });
  tabFiles.addEventListener("click", () => {
    timelinePane.hidden = true;
    filesPane.hidden = false;
    tabFiles.classList.add("selected");
    tabTimeline.classList.remove("selected");
    loadFiles();
  });

  append(root, [
    h(
      "header",
      { class: "card view-head", testid: "session-head" },
      h("div", {}, h("a", { href: "#/", class: "muted small" }, "← Sessions"), title),
      h("div", { class: "meta row" }, status, flag, h("span", {}, "cost ", cost), streamState, checkApp, appStatus, preview, cancel),
    ),
    h("nav", { class: "tabs" }, tabTimeline, tabFiles),
    timelinePane,
    filesPane,
  ]);
  return () => stops.forEach((fn) => fn());
}

// -- rooms ---------------------------------------------------------------------------

function roomsView() {
  const error = errorLine("room-create-error");
  const name = h("input", { required: true, maxlength: 500, placeholder: "Room name", testid: "room-name" });
  const maxRounds = h("input", { type: "number", min: 1, value: "20", testid: "room-max-rounds" });
  const gated = h("input", { type: "checkbox", testid: "room-gate-messages" });
  const create = h("button", { type: "submit", class: "primary", testid: "room-create" }, "Create room");
  const form = h(
    "form",
    { class: "stack" },
    name,
    h("label", {}, "Max rounds ", maxRounds),
    h("label", { class: "check" }, gated, "Hold every agent message for my approval"),
    h("div", { class: "row" }, create),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    create.disabled = true;
    try {
      const rounds = parseInt(maxRounds.value, 10);
      const body = { name: name.value.trim(), gateMessages: gated.checked };
      if (Number.isFinite(rounds)) body.maxRounds = rounds;
      const created = await api.createRoom(body);
      store.addRoom(created.roomId, created.roomToken, { name: body.name, code: created.code });
      location.hash = `#/room/${created.roomId}`;
    } catch (err) {
      error.textContent = err.message;
      create.disabled = false;
    }
  });

  const joinInput = h("input", { placeholder: "Paste an invite link", testid: "join-link" });
  const joinError = errorLine("join-error");
  const joinForm = h("form", { class: "row" }, joinInput, h("button", { type: "submit", testid: "join-go" }, "Join"));
  joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const m = joinInput.value.match(/#\/join\/([^/\s]+)\/([^/\s]+)/);
    if (m) location.hash = `#/join/${m[1]}/${m[2]}`;
    else joinError.textContent = "That is not an invite link (…/#/join/<room>/<code>).";
  });

  const rooms = store.rooms();
  const list = h(
    "ul",
    { class: "rooms", testid: "room-list" },
    rooms.length
      ? rooms.map((room) => {
          const state = badge("…", "room-row-state");
          api.room(room.id).then(
            (info) => setBadge(state, info.state),
            (err) => setBadge(state, err.status === 404 ? "gone" : "unknown"),
          );
          return h("li", { testid: "room-row", dataset: { roomId: room.id } }, h("a", { href: `#/room/${room.id}` }, room.name || room.id), " ", state);
        })
      : h("li", { class: "muted" }, "No rooms in this browser yet."),
  );
  append(root, [
    h("section", { class: "card", testid: "new-room" }, h("h2", {}, "New room"), form),
    h("section", { class: "card" }, h("h2", {}, "Your rooms"), list),
    h("section", { class: "card" }, h("h2", {}, "Join a room"), joinForm, joinError),
  ]);
  return () => {};
}

function joinView(roomId, code) {
  const message = h("p", { testid: "join-status" }, "Joining…");
  append(root, h("section", { class: "card" }, h("h2", {}, "Invite"), message));
  let live = true;
  api.joinRoom(roomId, code).then(
    (joined) => {
      store.addRoom(joined.id, joined.roomToken, { name: joined.name, code: joined.code });
      if (live) location.replace(`#/room/${joined.id}`);
    },
    (err) => {
      message.textContent =
        err.status === 410 ? "This invite was revoked." : err.status === 404 ? "No room matches this invite link." : err.message;
      message.className = "error";
    },
  );
  return () => {
    live = false;
  };
}

function roomView(roomId, selected) {
  if (!store.roomToken(roomId)) {
    append(root, h("section", { class: "card" }, h("h2", {}, "Unknown room"), h("p", {}, "This browser holds no token for this room: open its invite link."), h("a", { href: "#/rooms" }, "← Rooms")));
    return () => {};
  }
  const stops = [];
  const title = h("h2", { testid: "room-title" }, "Room");
  const state = badge("…", "room-state");
  const rounds = h("span", { testid: "room-rounds" });
  const cost = h("span", { testid: "room-cost" });
  const stopReason = h("span", { class: "stop-reason", testid: "room-stop-reason", hidden: true });
  const streamState = h("span", { class: "stream-state", testid: "stream-state" }, "connecting");
  const invite = h("input", { readonly: true, class: "invite", testid: "invite-link", value: "" });
  const copy = h("button", { class: "small", testid: "invite-copy" }, "Copy");
  copy.addEventListener("click", async () => {
    invite.select();
    try {
      await navigator.clipboard.writeText(invite.value);
      copy.textContent = "Copied";
    } catch {
      document.execCommand?.("copy");
    }
  });
  const showInvite = (code) => {
    if (code) invite.value = `${location.origin}/#/join/${roomId}/${code}`;
  };
  showInvite(store.rooms().find((r) => r.id === roomId)?.code);
  const closeButton = h("button", { class: "danger small", testid: "room-close" }, "Close room");
  closeButton.addEventListener("click", async () => {
    if (!confirm("Close the room? Its agents stop.")) return;
    try {
      await api.closeRoom(roomId);
    } catch (err) {
      messageError.textContent = err.message;
    }
  });
  const showStop = (reason, summary) => {
    if (!reason) return;
    stopReason.hidden = false;
    stopReason.textContent = `stopped: ${reason}${summary ? ` (${summary})` : ""}`;
    stopReason.dataset.reason = reason;
    closeButton.disabled = true;
  };

  // participants and their streams (read-only with the room token)
  const participants = new Map(); // sid -> {name, role, row, timeline, timelineEl, stream}
  const nameOf = (sid) => participants.get(sid)?.name ?? "";
  const gatesEl = h("div", { class: "gates", testid: "room-gates" });
  const gates = new GateBoard(gatesEl, {
    respond: (sid, body) => api.respondRoom(roomId, { ...body, sessionId: sid }),
    label: nameOf,
  });
  const peopleEl = h("ul", { class: "participants", testid: "participants" }, h("li", { class: "muted" }, "No agents yet."));
  const paneTitle = h("h3", { testid: "participant-pane-title" }, "");
  const paneBody = h("div", { class: "timeline", testid: "participant-timeline" });
  const pane = h("section", { class: "card participant-pane", hidden: true, testid: "participant-pane" }, h(
      "div",
      { class: "row" },
      paneTitle,
      h(
        "a",
        {
          href: `#/room/${roomId}`,
          class: "small",
          testid: "participant-pane-close",
          onclick: (event) => {
            event.preventDefault();
            history.replaceState(null, "", `#/room/${roomId}`);
            select(null);
          },
        },
        "close",
      ),
    ), h("p", { class: "muted small" }, "Read-only: this agent's events, as the room sees them."), paneBody);
  const toOptions = h("select", { testid: "room-message-to" }, h("option", { value: "" }, "everyone"));

  const watch = (p) => {
    if (p.stream) return;
    p.stream = new LiveStream(
      api.participantEventsUrl(roomId, p.sessionId),
      (event, id, key) => {
        p.timeline.add(event, id, key);
        gates.feed(p.sessionId, event);
      },
    ).start();
  };
  const select = (sid) => {
    const p = participants.get(sid);
    for (const other of participants.values()) other.row.classList.toggle("selected", other.sessionId === sid);
    if (!p) {
      pane.hidden = true;
      return;
    }
    watch(p);
    paneTitle.textContent = `${p.name}${p.role ? ` (${p.role})` : ""}`;
    paneBody.replaceChildren(p.timelineEl);
    pane.hidden = false;
  };
  const upsertParticipant = (info) => {
    let p = participants.get(info.sessionId);
    if (!p) {
      if (participants.size === 0) clear(peopleEl);
      const timelineEl = h("div", { dataset: { sessionId: info.sessionId } });
      p = {
        sessionId: info.sessionId,
        name: info.name,
        role: info.role,
        timelineEl,
        timeline: new SessionTimeline(timelineEl),
        stream: null,
        status: badge("…", "participant-status"),
        cost: h("span", { class: "muted small", testid: "participant-cost" }),
        flag: h("span", { class: "flag", hidden: true }, "⚑"),
      };
      const token = store.sessionToken(info.sessionId);
      p.row = h(
        "li",
        { testid: "participant", dataset: { sessionId: info.sessionId, name: info.name } },
        h(
          "a",
          {
            href: `#/room/${roomId}/session/${info.sessionId}`,
            testid: "participant-open",
            onclick: (event) => {
              // the same view: show the pane without reloading the room
              event.preventDefault();
              history.replaceState(null, "", `#/room/${roomId}/session/${info.sessionId}`);
              select(info.sessionId);
            },
          },
          h("strong", {}, info.name),
        ),
        info.role ? h("span", { class: "muted" }, ` ${info.role}`) : null,
        " ",
        p.status,
        " ",
        p.flag,
        " ",
        p.cost,
        token ? [" ", h("a", { href: `#/session/${info.sessionId}`, class: "small", title: "open with this browser's session token" }, "session")] : null,
      );
      participants.set(info.sessionId, p);
      peopleEl.append(p.row);
      toOptions.append(h("option", { value: info.name }, `@${info.name}`));
      if ([...participants.values()].filter((x) => x.stream).length < MAX_WATCHED) watch(p);
      if (selected === info.sessionId) select(selected);
    }
    setBadge(p.status, info.running ? "running" : info.live === false ? "ended" : "idle");
    p.flag.hidden = !info.needsInput;
    p.cost.textContent = info.costUsd !== undefined ? formatCost(info.costUsd) : "";
    if (info.needsInput) watch(p);
  };
  const refresh = async () => {
    try {
      const info = await api.room(roomId);
      title.textContent = info.name ?? "Room";
      setBadge(state, info.state);
      rounds.textContent = `round ${info.roundCount ?? 0}${info.maxRounds ? ` of ${info.maxRounds}` : ""}`;
      cost.textContent = info.totalCostUsd !== undefined ? formatCost(info.totalCostUsd) : "";
      showInvite(info.code);
      for (const p of info.participants ?? []) upsertParticipant(p);
      showStop(info.stopReason);
      const closed = info.state !== "active";
      addButton.disabled = closed;
      sendButton.disabled = closed;
    } catch (err) {
      setBadge(state, err.status === 404 ? "gone" : "unknown");
    }
  };

  // the room's own stream
  const timelineEl = h("div", { class: "timeline", testid: "room-timeline" });
  const timeline = new RoomTimeline(timelineEl, {
    onParticipants: () => refresh(),
    onClosed: (event) => {
      showStop(event.reason, event.summary);
      refresh();
    },
    onGateActivity: (event) => {
      const data = event.gateData;
      if (event.eventType === "ask_user_question" && data?.sessionId && data.toolUseId) {
        gates.feed(data.sessionId, { type: "ask_user_question", tool_use_id: data.toolUseId, question: event.text, questions: data.questions });
      }
    },
  });
  const stream = new LiveStream(
    api.roomEventsUrl(roomId),
    (event, id, key) => follow(() => timeline.add(event, id, key)),
    (s) => {
      streamState.textContent = s;
      streamState.dataset.state = s;
    },
  ).start();
  stops.push(() => stream.close(), () => gates.clear(), () => participants.forEach((p) => p.stream?.close()));

  // talking to the room
  const from = h("input", { value: store.name() || "me", maxlength: 64, testid: "room-message-from", title: "your name in the room" });
  const body = h("textarea", { rows: 2, placeholder: "Message the room…", testid: "room-message-input", maxlength: 10000 });
  const sendButton = h("button", { type: "submit", class: "primary", testid: "room-message-send" }, "Send");
  const messageError = errorLine("room-message-error");
  const messageForm = h("form", { class: "composer" }, h("div", { class: "stack grow" }, h("div", { class: "row" }, "From ", from, " to ", toOptions), body), sendButton);
  messageForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = body.value.trim();
    if (!text) return;
    messageError.textContent = "";
    sendButton.disabled = true;
    try {
      const payload = { from: from.value.trim() || "me", body: text };
      if (toOptions.value) payload.to = toOptions.value;
      await api.postMessage(roomId, payload);
      body.value = "";
    } catch (err) {
      messageError.textContent = err.message;
    } finally {
      sendButton.disabled = false;
    }
  });

  // adding an agent
  const agentName = h("input", { placeholder: "name (e.g. alice)", maxlength: 64, testid: "agent-name" });
  const role = h("select", { testid: "agent-role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const roleName = h("input", { placeholder: "role name", hidden: true, testid: "agent-role-name" });
  const skill = h("textarea", { rows: 3, placeholder: "What this role does (its skill)", hidden: true, testid: "agent-skill" });
  const prompt = h("textarea", { rows: 2, placeholder: "First task (optional)", testid: "agent-prompt" });
  const agentKey = h("input", { type: "password", autocomplete: "off", placeholder: "model API key (optional; default: your saved key)", testid: "agent-api-key" });
  const addButton = h("button", { type: "submit", class: "primary", testid: "agent-add" }, "Add agent");
  const addError = errorLine("agent-add-error");
  role.addEventListener("change", () => {
    roleName.hidden = role.value !== "custom";
    skill.hidden = role.value !== "custom";
  });
  const addForm = h("form", { class: "stack" }, agentName, role, roleName, skill, prompt, agentKey, h("div", { class: "row" }, addButton), addError);
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    addError.textContent = "";
    addButton.disabled = true;
    try {
      const payload = { name: agentName.value.trim() || undefined };
      if (role.value === "custom") {
        payload.role = roleName.value.trim() || "custom";
        if (skill.value.trim()) payload.customSkill = skill.value.trim();
      } else {
        payload.role = role.value;
      }
      if (prompt.value.trim()) payload.initialPrompt = prompt.value.trim();
      const key = agentKey.value.trim() || store.apiKey();
      if (key) payload.apiKey = key;
      const added = await api.addAgent(roomId, payload);
      store.addSession(added.sessionId, added.sessionToken, { listed: false });
      agentName.value = "";
      prompt.value = "";
      agentKey.value = "";
      await refresh();
    } catch (err) {
      addError.textContent = err.message;
    } finally {
      addButton.disabled = state.textContent !== "active";
    }
  });

  append(root, [
    h(
      "header",
      { class: "card view-head", testid: "room-head" },
      h("div", {}, h("a", { href: "#/rooms", class: "muted small" }, "← Rooms"), title),
      h("div", { class: "meta row" }, state, rounds, cost, stopReason, streamState, closeButton),
      h("div", { class: "row invite-row" }, h("span", { class: "muted small" }, "Invite link"), invite, copy),
    ),
    h(
      "div",
      { class: "columns" },
      h("div", { class: "main" }, timelineEl, gatesEl, messageForm, messageError, pane),
      h(
        "aside",
        {},
        h("section", { class: "card" }, h("h3", {}, "Participants"), peopleEl),
        h("section", { class: "card", testid: "add-agent" }, h("h3", {}, "Add an agent"), addForm),
      ),
    ),
  ]);
  stops.push(every(ROOM_POLL_MS, refresh));
  return () => stops.forEach((fn) => fn());
}

// -- routing -------------------------------------------------------------------------

let leave = () => {};

function route() {
  leave();
  leave = () => {};
  clear(root);
  window.scrollTo(0, 0);
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  let section = "sessions";
  if (parts[0] === "session" && parts[1]) {
    leave = sessionView(parts[1]);
  } else if (parts[0] === "room" && parts[1]) {
    section = "rooms";
    leave = roomView(parts[1], parts[2] === "session" ? parts[3] : null);
  } else if (parts[0] === "join" && parts[1] && parts[2]) {
    section = "rooms";
    leave = joinView(parts[1], parts[2]);
  } else if (parts[0] === "rooms") {
    section = "rooms";
    leave = roomsView();
  } else {
    leave = homeView();
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("selected", link.dataset.nav === section);
  }
}

// a client-side route reached by path (the server serves this page for it)
if (location.pathname !== "/" && !location.hash) {
  history.replaceState(null, "", `/#${location.pathname}`);
}
window.addEventListener("hashchange", route);
route();
