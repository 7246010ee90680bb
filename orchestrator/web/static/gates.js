// Gate panels: where a person answers an agent. One panel per pending gate, keyed by
// (session, gate id), built from the gate's records on the session's stream:
// gate_opened and its announcement (infra_config_prompt, ask_user_question,
// tool_permission_request, outbound_message_gate). A panel goes away when its
// gate_ended (or outbound_message_gate_resolved, or a gate_resolved that can only
// be its own) arrives; an ended gate never comes back, even on a replay.

import { h, clear, shorten } from "./dom.js";

const TITLES = {
  infra_config: "Setup choice",
  ask_user_question: "Question",
  tool_permission: "Tool approval",
  outbound_message: "Outbound room message",
};

function countdown(expiresAt) {
  const left = Math.max(0, Math.floor((Date.parse(expiresAt) - Date.now()) / 1000));
  const minutes = Math.floor(left / 60);
  const seconds = String(left % 60).padStart(2, "0");
  return { left, text: left > 0 ? `expires in ${minutes}:${seconds}` : "expired" };
}

function questionsOf(data) {
  const request = data.request ?? {};
  const list = request.questions?.length ? request.questions : data.questions;
  if (Array.isArray(list) && list.length) return list;
  if (data.question) return [{ question: data.question, options: data.options ?? [] }];
  return [];
}

export class GateBoard {
  /**
   * @param {HTMLElement} root where the panels go
   * @param {object} opts
   * @param {(sessionId: string, body: object) => Promise<unknown>} opts.respond
   * @param {(sessionId: string) => string} [opts.label] who is asking (rooms)
   * @param {(sessionId: string) => Promise<object>} [opts.provision] a claimable database
   */
  constructor(root, { respond, label = () => "", provision = null }) {
    this.root = root;
    this.respond = respond;
    this.label = label;
    this.provision = provision;
    this.panels = new Map();
    this.ended = new Set();
  }

  get size() {
    return this.panels.size;
  }

  feed(sessionId, event) {
    switch (event.type) {
      case "gate_opened":
        this.upsert(sessionId, event.gateId, event.gate, {
          request: event.request ?? {},
          expiresAt: event.expiresAt,
        });
        break;
      case "infra_config_prompt":
        this.upsert(sessionId, "infra_config", "infra_config", {
          projectName: event.projectName,
          runtime: event.runtime,
        });
        break;
      case "ask_user_question":
        this.upsert(sessionId, `ask_user_question:${event.tool_use_id}`, "ask_user_question", {
          toolUseId: event.tool_use_id,
          question: event.question,
          options: event.options,
          questions: event.questions,
        });
        break;
      case "tool_permission_request":
        this.upsert(sessionId, event.gateId, "tool_permission", {
          toolName: event.tool_name,
          toolInput: event.tool_input,
          toolUseId: event.tool_use_id,
          expiresAt: event.expiresAt,
          agent: event.agent,
        });
        break;
      case "outbound_message_gate":
        this.upsert(sessionId, event.gateId, "outbound_message", {
          body: event.body,
          to: event.to,
          roomId: event.roomId,
        });
        break;
      case "gate_ended":
      case "outbound_message_gate_resolved":
        this.end(sessionId, event.gateId);
        break;
      case "gate_resolved": {
        const open = [...this.panels.values()].filter(
          (p) => p.sessionId === sessionId && p.kind === event.gate,
        );
        if (open.length === 1) this.end(sessionId, open[0].gateId);
        break;
      }
      default:
        break;
    }
  }

  upsert(sessionId, gateId, kind, data) {
    if (!gateId) return;
    const key = `${sessionId}|${gateId}`;
    if (this.ended.has(key)) return;
    let panel = this.panels.get(key);
    if (!panel) {
      panel = { key, sessionId, gateId, kind, data: {}, touched: false, timer: null, el: null };
      panel.el = h("section", {
        class: `gate gate-${kind}`,
        testid: "gate-panel",
        dataset: { gateKind: kind, gateId, sessionId },
      });
      this.panels.set(key, panel);
      this.root.append(panel.el);
    }
    if (kind) panel.kind = kind;
    for (const [k, v] of Object.entries(data)) if (v !== undefined && v !== null) panel.data[k] = v;
    if (!panel.touched) this.render(panel);
  }

  end(sessionId, gateId) {
    const key = `${sessionId}|${gateId}`;
    this.ended.add(key);
    const panel = this.panels.get(key);
    if (!panel) return;
    clearInterval(panel.timer);
    panel.el.remove();
    this.panels.delete(key);
  }

  clear() {
    for (const panel of this.panels.values()) clearInterval(panel.timer);
    this.panels.clear();
    clear(this.root);
  }

  // -- rendering -----------------------------------------------------------------

  render(panel) {
    clearInterval(panel.timer);
    const el = clear(panel.el);
    const who = this.label(panel.sessionId);
    const status = h("p", { class: "gate-status", testid: "gate-status", role: "status" });
    const expiresAt = panel.data.expiresAt ?? panel.data.request?.expiresAt;
    const heading = h(
      "header",
      {},
      h("strong", {}, TITLES[panel.kind] ?? panel.kind),
      who ? h("span", { class: "muted" }, ` · ${who}`) : null,
    );
    if (expiresAt) {
      const clock = h("span", { class: "countdown", testid: "gate-countdown" });
      const tick = () => {
        const { left, text } = countdown(expiresAt);
        clock.textContent = text;
        clock.classList.toggle("urgent", left < 30);
        if (left <= 0) {
          clearInterval(panel.timer);
          for (const button of el.querySelectorAll("button")) button.disabled = true;
        }
      };
      heading.append(clock);
      tick();
      panel.timer = setInterval(tick, 1000);
    }
    el.append(heading);
    const send = async (body, buttons) => {
      panel.touched = true;
      for (const b of buttons) b.disabled = true;
      status.textContent = "Sending…";
      status.className = "gate-status";
      try {
        await this.respond(panel.sessionId, body);
        status.textContent = "Answered; waiting for the agent…";
        el.classList.add("answered");
      } catch (err) {
        status.textContent =
          err.status === 409 ? "This gate was already answered or has ended." : err.message;
        status.className = "gate-status error";
        if (err.status !== 409) for (const b of buttons) b.disabled = false;
      }
    };
    const build = {
      infra_config: () => this.infra(panel, send),
      ask_user_question: () => this.question(panel, send),
      tool_permission: () => this.tool(panel, send),
      outbound_message: () => this.outbound(panel, send),
    }[panel.kind];
    el.append(build ? build() : h("p", {}, `A ${panel.kind} gate is waiting.`), status);
  }

  infra(panel, send) {
    const d = panel.data;
    const form = h("form", { class: "stack", onsubmit: (e) => e.preventDefault() });
    const choice = (value, label, checked = false) =>
      h(
        "label",
        { class: "radio" },
        h("input", { type: "radio", name: `infra-${panel.key}`, value, checked, testid: `infra-mode-${value}` }),
        label,
      );
    const cloud = h(
      "div",
      { class: "stack cloud-fields", hidden: true },
      h("input", { placeholder: "Database URL", type: "password", name: "databaseUrl", autocomplete: "off", testid: "infra-database-url" }),
      h("input", { placeholder: "Electric URL", name: "electricUrl", autocomplete: "off" }),
      h("input", { placeholder: "Source ID", name: "sourceId", autocomplete: "off" }),
      h("input", { placeholder: "Source secret", type: "password", name: "secret", autocomplete: "off" }),
    );
    const modes = h(
      "div",
      { class: "row" },
      choice("local", "Local", true),
      choice("cloud", "Electric Cloud (your own)"),
      this.provision ? choice("claim", "Provision a claimable cloud database") : null,
    );
    const submit = h("button", { type: "submit", class: "primary", testid: "infra-submit" }, "Continue");
    form.append(
      h("p", {}, "Where should ", h("code", {}, d.projectName ?? "the project"), " run", d.runtime ? ` (${d.runtime} sandbox)` : "", "?"),
      modes,
      cloud,
      h("div", { class: "row" }, submit),
    );
    form.addEventListener("change", () => {
      panel.touched = true;
      cloud.hidden = form.querySelector("input[type=radio]:checked")?.value !== "cloud";
    });
    submit.addEventListener("click", async () => {
      const mode = form.querySelector("input[type=radio]:checked")?.value ?? "local";
      const body = { gate: "infra_config", mode };
      if (mode === "cloud") {
        for (const input of cloud.querySelectorAll("input")) {
          if (input.value.trim()) body[input.name] = input.value.trim();
        }
        body._summary = "Electric Cloud (your own)";
      } else if (mode === "claim") {
        submit.disabled = true;
        try {
          const claim = await this.provision(panel.sessionId);
          for (const key of ["databaseUrl", "electricUrl", "sourceId", "secret", "claimId"]) {
            if (claim[key]) body[key] = claim[key];
          }
        } catch (err) {
          submit.disabled = false;
          form.parentElement.querySelector(".gate-status").textContent = err.message;
          return;
        }
        body._summary = "Provisioned (Cloud)";
      } else {
        body._summary = "Local";
      }
      await send(body, [submit]);
    });
    return form;
  }

  question(panel, send) {
    const questions = questionsOf(panel.data);
    const toolUseId = panel.data.toolUseId ?? panel.data.request?.toolUseId;
    const answers = new Map();
    const submit = h("button", { class: "primary", testid: "question-submit", disabled: true }, "Send answers");
    const buttons = [submit];
    const ready = () => {
      submit.disabled = !questions.every((q) => (answers.get(q.question) ?? []).length > 0);
    };
    const blocks = questions.map((q, index) => {
      const picked = [];
      answers.set(q.question, picked);
      const other = h("input", {
        placeholder: "Other answer",
        testid: "question-other",
        oninput: () => {
          panel.touched = true;
          picked.length = 0;
          for (const b of optionButtons) b.setAttribute("aria-pressed", "false");
          if (other.value.trim()) picked.push(other.value.trim());
          ready();
        },
      });
      const optionButtons = (q.options ?? []).map((option) => {
        const label = typeof option === "string" ? option : option.label;
        const button = h(
          "button",
          {
            type: "button",
            class: "option",
            testid: "question-option",
            "aria-pressed": "false",
            title: option.description ?? "",
            dataset: { question: String(index), label },
          },
          h("span", {}, label),
          option.description ? h("small", { class: "muted" }, option.description) : null,
        );
        button.addEventListener("click", () => {
          panel.touched = true;
          other.value = "";
          const at = picked.indexOf(label);
          if (q.multiSelect) {
            if (at >= 0) picked.splice(at, 1);
            else picked.push(label);
          } else {
            picked.length = 0;
            picked.push(label);
          }
          for (const b of optionButtons) {
            b.setAttribute("aria-pressed", String(picked.includes(b.dataset.label)));
          }
          ready();
        });
        buttons.push(button);
        return button;
      });
      return h(
        "div",
        { class: "question", testid: "question" },
        q.header ? h("div", { class: "muted small" }, q.header) : null,
        h("p", { class: "question-text" }, q.question),
        q.multiSelect ? h("div", { class: "muted small" }, "Pick one or more") : null,
        h("div", { class: "options" }, optionButtons),
        other,
      );
    });
    submit.addEventListener("click", () => {
      const body = { gate: "ask_user_question", toolUseId, answers: {} };
      for (const q of questions) body.answers[q.question] = answers.get(q.question).join(", ");
      body._summary = shorten(Object.values(body.answers).join("; "), 200);
      send(body, buttons);
    });
    return h("div", { class: "stack" }, blocks, h("div", { class: "row" }, submit));
  }

  tool(panel, send) {
    const d = panel.data;
    const request = d.request ?? {};
    const name = d.toolName ?? request.tool_name ?? "a tool";
    const input = d.toolInput ?? request.tool_input ?? {};
    const toolUseId = d.toolUseId ?? request.tool_use_id ?? panel.gateId.replace(/^tool_permission:/, "");
    const preview =
      typeof input.command === "string"
        ? input.command
        : typeof input.file_path === "string"
          ? input.file_path
          : JSON.stringify(input, null, 2);
    const allow = h("button", { class: "primary", testid: "gate-allow" }, "Allow");
    const deny = h("button", { class: "danger", testid: "gate-deny" }, "Deny");
    const buttons = [allow, deny];
    allow.addEventListener("click", () =>
      send({ gate: "tool_permission", toolUseId, decision: "allow" }, buttons),
    );
    deny.addEventListener("click", () =>
      send({ gate: "tool_permission", toolUseId, decision: "deny" }, buttons),
    );
    return h(
      "div",
      { class: "stack" },
      h("p", {}, "The agent wants to run ", h("code", { testid: "gate-tool-name" }, name), ":"),
      h("pre", { class: "tool-input", testid: "gate-tool-input" }, preview),
      h("div", { class: "row" }, allow, deny),
    );
  }

  outbound(panel, send) {
    const d = panel.data;
    const edit = h("textarea", { rows: 3, hidden: true, testid: "outbound-edit-body" });
    edit.value = d.body ?? "";
    const approve = h("button", { class: "primary", testid: "outbound-approve" }, "Approve");
    const editButton = h("button", { testid: "outbound-edit" }, "Edit");
    const sendEdited = h("button", { class: "primary", hidden: true, testid: "outbound-send-edited" }, "Send edited");
    const drop = h("button", { class: "danger", testid: "outbound-drop" }, "Drop");
    const buttons = [approve, editButton, sendEdited, drop];
    const base = { gate: "outbound_message_gate", gateId: panel.gateId };
    approve.addEventListener("click", () => send({ ...base, action: "approve" }, buttons));
    drop.addEventListener("click", () => send({ ...base, action: "drop" }, buttons));
    editButton.addEventListener("click", () => {
      panel.touched = true;
      edit.hidden = false;
      sendEdited.hidden = false;
      editButton.hidden = true;
      edit.focus();
    });
    sendEdited.addEventListener("click", () =>
      send({ ...base, action: "edit", editedBody: edit.value }, buttons),
    );
    return h(
      "div",
      { class: "stack" },
      h("p", {}, "To ", h("strong", {}, d.to ? `@${d.to}` : "the room"), ":"),
      h("blockquote", { class: "outbound-body", testid: "outbound-body" }, d.body ?? ""),
      edit,
      h("div", { class: "row" }, approve, editButton, sendEdited, drop),
    );
  }
}
