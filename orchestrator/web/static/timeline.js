// Timelines: a session's events (prompts, progress, the agent's text as Markdown,
// tool calls folded with their results, todo lists, gates) and a room's records
// (messages, participants, activity, the stop). Each entry carries its event id.

import { h, formatCost, formatTime, shorten } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

function markdown(text, testid) {
  const el = h("div", { class: "markdown", testid });
  el.innerHTML = renderMarkdown(text); // renderMarkdown escapes everything it is given
  return el;
}

function toolSummary(name, input) {
  if (!input || typeof input !== "object") return name;
  const main = input.command ?? input.file_path ?? input.path ?? input.pattern ?? input.url ?? input.description;
  return main ? `${name}: ${shorten(main, 90)}` : name;
}

const TODO_MARKS = { completed: "☑", in_progress: "◐", pending: "☐" };

export function todoList(todos) {
  return h(
    "ul",
    { class: "todos", testid: "todo-list" },
    (todos ?? []).map((todo) =>
      h(
        "li",
        { class: `todo todo-${todo.status}`, testid: "todo-item", dataset: { status: todo.status ?? "" } },
        h("span", { class: "todo-mark" }, TODO_MARKS[todo.status] ?? "☐"),
        " ",
        todo.content ?? todo.activeForm ?? "",
      ),
    ),
  );
}

export class SessionTimeline {
  /**
   * @param {HTMLElement} root
   * @param {object} [hooks] onCost(total), onTodos(todos), onAppStatus(event), onEnd(event)
   */
  constructor(root, hooks = {}) {
    this.root = root;
    this.hooks = hooks;
    this.tools = new Map();
    this.count = 0;
  }

  entry(kind, id, ts, ...children) {
    const el = h(
      "article",
      {
        class: `entry entry-${kind}`,
        testid: "timeline-entry",
        dataset: { eventId: id ?? "", eventKey: this.key ?? "", type: kind },
      },
      ts ? h("time", { class: "ts" }, formatTime(ts)) : null,
      children,
    );
    this.root.append(el);
    this.count += 1;
    return el;
  }

  /** @param {string} [key] the event's key in its stream (see LiveStream) */
  add(event, id, key) {
    this.key = key;
    const ts = event.ts;
    switch (event.type) {
      case "user_prompt":
        this.entry(
          "user",
          id,
          ts,
          h("div", { class: "who" }, event.sender ? event.sender : "You"),
          h("div", { class: "text", testid: "event-user-prompt" }, event.message),
        );
        break;
      case "assistant_message":
        this.entry(
          "assistant",
          id,
          ts,
          h("div", { class: "who" }, event.agent ?? "Agent"),
          markdown(event.text ?? "", "event-assistant"),
        );
        break;
      case "log":
        this.entry(
          `log log-${event.level}`,
          id,
          ts,
          h("span", { class: `badge level-${event.level}` }, event.level),
          " ",
          h("span", { testid: "event-log" }, event.message),
        );
        break;
      case "pre_tool_use": {
        const result = h("div", { class: "tool-result pending", testid: "tool-result" }, "running…");
        const details = h(
          "details",
          { class: "tool", testid: "tool-call", dataset: { toolUseId: event.tool_use_id ?? "", tool: event.tool_name } },
          h("summary", {}, h("span", { class: "tool-icon" }, "⚙"), " ", toolSummary(event.tool_name, event.tool_input)),
          h("pre", { class: "tool-input" }, JSON.stringify(event.tool_input ?? {}, null, 2)),
          result,
        );
        this.entry("tool", id, ts, details);
        if (event.tool_use_id) this.tools.set(event.tool_use_id, { details, result });
        if (event.tool_name === "TodoWrite" && Array.isArray(event.tool_input?.todos)) {
          this.hooks.onTodos?.(event.tool_input.todos);
        }
        break;
      }
      case "post_tool_use":
      case "post_tool_use_failure": {
        const text = event.tool_response ?? event.error ?? "";
        const failed = event.type === "post_tool_use_failure" || event.error !== undefined;
        const found = this.tools.get(event.tool_use_id);
        if (found) {
          found.result.className = `tool-result${failed ? " failed" : ""}`;
          found.result.replaceChildren(h("pre", {}, text || "(no output)"));
          found.details.classList.add(failed ? "failed" : "done");
          found.details.dataset.eventIdResult = id ?? "";
        } else {
          this.entry(
            "tool",
            id,
            ts,
            h(
              "details",
              { class: `tool ${failed ? "failed" : "done"}`, testid: "tool-call" },
              h("summary", {}, `${event.tool_name ?? "Tool"} result`),
              h("div", { class: "tool-result", testid: "tool-result" }, h("pre", {}, text)),
            ),
          );
        }
        break;
      }
      case "todo_write":
        this.entry("todos", id, ts, h("div", { class: "who" }, "Todo list"), todoList(event.todos));
        this.hooks.onTodos?.(event.todos);
        break;
      case "cost_update":
        this.hooks.onCost?.(event.total_usd);
        break;
      case "session_start":
        this.entry("system", id, ts, h("span", { class: "muted" }, "Agent started"));
        break;
      case "session_end": {
        const parts = [event.success ? "Turn finished" : "Turn ended without success"];
        if (event.cost_usd !== undefined) parts.push(formatCost(event.cost_usd));
        if (event.num_turns !== undefined) parts.push(`${event.num_turns} turns`);
        if (event.duration_ms !== undefined) parts.push(`${(event.duration_ms / 1000).toFixed(1)} s`);
        this.entry(event.success ? "end" : "end failed", id, ts, h("span", { testid: "event-session-end" }, parts.join(" · ")));
        if (event.cost_usd !== undefined) this.hooks.onCost?.(event.cost_usd, true);
        this.hooks.onEnd?.(event);
        break;
      }
      case "app_status":
        this.entry(
          "system",
          id,
          ts,
          `App ${event.status}`,
          event.port ? ` on port ${event.port}` : "",
          event.previewUrl && /^https?:\/\//.test(event.previewUrl)
            ? [" · ", h("a", { href: event.previewUrl, target: "_blank", rel: "noopener noreferrer" }, "preview")]
            : null,
        );
        this.hooks.onAppStatus?.(event);
        break;
      case "budget_exceeded":
        this.entry("log log-error", id, ts, `Budget exceeded: spent ${formatCost(event.spent_usd)} of ${formatCost(event.budget_usd)}`);
        break;
      case "infra_config_prompt":
        this.entry("gate-note", id, ts, "Waiting for the setup choice of ", h("code", {}, event.projectName ?? ""));
        break;
      case "ask_user_question":
        this.entry("gate-note", id, ts, h("div", { class: "who" }, "Agent asks"), event.question ?? "");
        break;
      case "tool_permission_request":
        this.entry("gate-note", id, ts, "Waiting for approval to run ", h("code", {}, toolSummary(event.tool_name, event.tool_input)));
        break;
      case "outbound_message_gate":
        this.entry("gate-note", id, ts, "Room message held for approval", event.to ? ` (to @${event.to})` : "", ": ", shorten(event.body, 120));
        break;
      case "gate_resolved":
        this.entry(
          "gate-done",
          id,
          ts,
          h("span", { testid: "event-gate-resolved" }, "✓ ", event.summary ?? `${event.gate} answered`),
          event.resolvedBy?.displayName ? h("span", { class: "muted" }, ` by ${event.resolvedBy.displayName}`) : null,
          event.details
            ? h("dl", { class: "details" }, Object.entries(event.details).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))
            : null,
        );
        break;
      case "outbound_message_gate_resolved":
        this.entry(
          "gate-done",
          id,
          ts,
          h("span", { testid: "event-gate-resolved" }, `✓ Room message ${event.action === "edit" ? "edited and sent" : event.action === "drop" ? "dropped" : "approved"}`),
        );
        break;
      case "gate_ended":
        if (event.outcome !== "resolved") {
          this.entry("gate-done failed", id, ts, `Gate ${event.gate} ${event.outcome}`, event.reason ? `: ${event.reason}` : "");
        }
        break;
      case "gate_opened":
        break; // shown by its announcement and its panel
      default:
        this.entry(
          "other",
          id,
          ts,
          h("details", {}, h("summary", {}, event.type ?? "event"), h("pre", {}, JSON.stringify(event, null, 2))),
        );
    }
  }
}

export class RoomTimeline {
  /** @param {object} [hooks] onParticipants(), onClosed(event), onGateActivity(event) */
  constructor(root, hooks = {}) {
    this.root = root;
    this.hooks = hooks;
    this.count = 0;
  }

  entry(kind, id, ts, ...children) {
    const el = h(
      "article",
      {
        class: `entry entry-${kind}`,
        testid: "room-entry",
        dataset: { eventId: id ?? "", eventKey: this.key ?? "", type: kind },
      },
      ts ? h("time", { class: "ts" }, formatTime(ts)) : null,
      children,
    );
    this.root.append(el);
    this.count += 1;
    return el;
  }

  /** @param {string} [key] the event's key in its stream (see LiveStream) */
  add(event, id, key) {
    this.key = key;
    const ts = event.ts;
    switch (event.type) {
      case "room_created":
        this.entry("system", id, ts, `Room “${event.name}” created`, event.settings?.maxRounds ? ` · up to ${event.settings.maxRounds} rounds` : "");
        break;
      case "agent_message": {
        const system = event.from === "system";
        const el = this.entry(
          system ? "system" : "message",
          id,
          ts,
          h("div", { class: "who" }, h("strong", { testid: "message-from" }, event.from), event.to ? h("span", { class: "muted" }, ` → @${event.to}`) : null, event.metadata?.round ? h("span", { class: "muted small" }, ` · round ${event.metadata.round}`) : null),
          markdown(event.body ?? "", "message-body"),
        );
        el.dataset.testid = system ? "room-entry" : "room-message";
        break;
      }
      case "participant_joined": {
        const p = event.participant ?? {};
        this.entry("system", id, ts, `${p.displayName ?? p.id} joined`, p.role ? ` as ${p.role}` : "");
        this.hooks.onParticipants?.();
        break;
      }
      case "participant_left":
        this.entry("system", id, ts, `A participant left`, event.reason ? ` (${event.reason})` : "");
        this.hooks.onParticipants?.();
        break;
      case "agent_activity":
        this.entry(
          "activity",
          id,
          ts,
          h("span", { class: "who" }, event.from),
          " ",
          h("span", { class: "muted" }, event.eventType === "ask_user_question" ? "asks: " : ""),
          shorten(event.text, 200),
        );
        this.hooks.onGateActivity?.(event);
        break;
      case "room_settings":
        this.entry("system", id, ts, `Auto-iterate ${event.autoIterate ? "on" : "off"}`);
        break;
      case "room_closed":
        this.entry("closed", id, ts, h("strong", {}, "Room closed"), ` · ${event.reason}`, event.summary ? ` · ${event.summary}` : "");
        this.hooks.onClosed?.(event);
        break;
      default:
        this.entry("other", id, ts, h("details", {}, h("summary", {}, event.type ?? "record"), h("pre", {}, JSON.stringify(event, null, 2))));
    }
  }
}
