"""The web UI in a real browser (Debian's chromium, driven by Playwright's sync API)
against the real server: Claude Code CLIs in local sandboxes, playing the scripted
model. Sessions (the setup choice, a tool approval with its countdown, a question,
the timeline, files, the list), a timeline that survives dropped connections, a
room of two agents with a held message and an invited second browser; the static
routes and the Markdown renderer. Screenshots of each main screen go to
``test-artifacts/web/`` and the test's tmp dir."""

from __future__ import annotations

import http.client
import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.models import AgentScript, Script, Text, ToolCall, Turn
from orchestrator.tokens import Purpose

from ..docker_support import in_ci
from .support import DroppingProxy, LiveServer, chromium, live_server, screenshot

if not in_ci():
    pytest.importorskip("playwright.sync_api", reason="the `playwright` package is missing")
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

READY = "Ready."
TODOS = {
    "todos": [
        {"content": "Write f.txt", "status": "in_progress", "activeForm": "Writing f.txt"},
        {"content": "Check it", "status": "pending", "activeForm": "Checking it"},
    ]
}
QUESTIONS = {
    "questions": [
        {
            "question": "Which color?",
            "header": "Color",
            "options": [
                {"label": "red", "description": "warm"},
                {"label": "blue", "description": "cold"},
            ],
            "multiSelect": False,
        },
        {
            "question": "Which sizes?",
            "header": "Size",
            "options": [
                {"label": "small", "description": "fits a pocket"},
                {"label": "large", "description": "fills a room"},
            ],
            "multiSelect": True,
        },
    ]
}
# Each test's agents, named by the API key the page sends (the server has none).
SCRIPT = Script(
    agents={
        "web-tools": AgentScript.of(
            Turn(
                blocks=(
                    Text("I will write **f.txt**."),
                    ToolCall("TodoWrite", TODOS),
                    ToolCall("Bash", {"command": "echo hello > f.txt && cat f.txt"}),
                )
            ),
            "Done: `f.txt` says **hello**.\n\n- wrote it\n- read it back",
        ),
        "web-ask": AgentScript.of(
            Turn(blocks=(ToolCall("AskUserQuestion", QUESTIONS),)), "Blue, small and large."
        ),
        "web-resume": AgentScript.of("First reply.", "Second reply.", "Third reply."),
        "alice": AgentScript.of(READY, "@bob GATE: may I deploy today?"),
        "bob": AgentScript.of(READY, "@alice Sounds good: tomorrow it is."),
    }
)
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(SCRIPT, tmp_path_factory.mktemp("web")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(path))
        try:
            yield launched
        finally:
            launched.close()


class Pages:
    """New browser contexts (each a fresh browser profile: its own localStorage) on
    a base URL; uncaught errors in any page fail the test."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def open(self, base_url: str) -> Page:
        context = self.browser.new_context(
            base_url=base_url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    opened = Pages(browser)
    try:
        yield opened
    finally:
        opened.close()
    assert opened.errors == [], "uncaught errors in the page"


@pytest.fixture
def page(pages: Pages, server: LiveServer) -> Page:
    return pages.open(server.url)


def start_session(
    page: Page, key: str, description: str, *, freeform: bool, ask_tools: bool = False
) -> str:
    """Create a session from the home page (the API key saved in the settings);
    its id, once the page shows it."""
    page.goto("/")
    page.get_by_test_id("settings").locator("summary").click()
    page.get_by_test_id("settings-api-key").fill(key)
    page.get_by_test_id("settings-save").click()
    page.get_by_test_id("session-description").fill(description)
    if freeform:
        page.get_by_test_id("session-freeform").check()
    if ask_tools:
        page.get_by_test_id("session-ask-tools").check()
    page.get_by_test_id("session-create").click()
    page.wait_for_url(re.compile(r".*#/session/[0-9a-f-]+$"))
    return page.url.rsplit("/", 1)[1]


def entries(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = page.eval_on_selector_all(
        "[data-testid=timeline] [data-event-key]",
        "els => els.map(e => ({key: e.dataset.eventKey, id: e.dataset.eventId,"
        " type: e.dataset.type, text: e.innerText}))",
    )
    return found


def cost_of(text: str) -> float:
    return float(text.strip().lstrip("$"))


def test_a_session_with_its_gates_timeline_and_files(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    start_session(page, "web-tools", "write f.txt", freeform=False, ask_tools=True)

    # the setup choice (not freeform): local
    infra = page.locator("[data-testid=gate-panel][data-gate-kind=infra_config]")
    expect(infra).to_contain_text("Where should")
    expect(infra.get_by_test_id("infra-mode-local")).to_be_checked()
    infra.get_by_test_id("infra-submit").click()
    expect(infra).to_have_count(0)

    # the Bash call waits for a person, with a live countdown
    tool = page.locator("[data-testid=gate-panel][data-gate-kind=tool_permission]")
    expect(tool.get_by_test_id("gate-tool-input")).to_have_text("echo hello > f.txt && cat f.txt")
    countdown = tool.get_by_test_id("gate-countdown")
    expect(countdown).to_have_text(re.compile(r"expires in [45]:\d\d"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=5_000)  # it ticks
    expect(page.get_by_test_id("needs-input")).to_be_visible()
    screenshot(page, "gate-panel", tmp_path)
    tool.get_by_test_id("gate-allow").click()
    expect(tool).to_have_count(0)

    # the tool call, folded, with its result; the reply as Markdown; todos; cost
    call = page.locator("[data-testid=tool-call][data-tool=Bash]")
    expect(call).to_have_count(1)
    expect(call.get_by_test_id("tool-result")).to_have_text("hello")
    expect(call.get_by_test_id("tool-result")).to_be_hidden()  # folded
    call.locator("summary").click()
    expect(call.get_by_test_id("tool-result")).to_be_visible()
    reply = page.get_by_test_id("event-assistant").last
    expect(reply.locator("strong")).to_have_text("hello")
    expect(reply.locator("code")).to_have_text("f.txt")
    expect(reply.locator("li")).to_have_text(["wrote it", "read it back"])
    expect(page.get_by_test_id("event-session-end")).to_contain_text("Turn finished")
    resolved = page.get_by_test_id("event-gate-resolved")
    expect(resolved).to_have_text(["✓ Local", "✓ Allowed Bash"])
    todos = page.get_by_test_id("todos").get_by_test_id("todo-item")
    expect(todos).to_have_count(2)
    expect(todos.first).to_have_attribute("data-status", "in_progress")
    expect(page.get_by_test_id("session-status")).to_have_text("complete")
    expect(page.get_by_test_id("session-cost")).not_to_have_text("$0.00")
    assert cost_of(page.get_by_test_id("session-cost").inner_text()) > 0
    assert page.locator("[data-testid=gate-panel]").count() == 0
    screenshot(page, "timeline", tmp_path)

    # the sandbox's files and a viewer; the app's status
    page.get_by_test_id("tab-files").click()
    page.locator("[data-testid=file-entry][data-path='f.txt']").click()
    expect(page.get_by_test_id("file-viewer")).to_have_text("hello\n")
    page.get_by_test_id("app-status-check").click()
    expect(page.get_by_test_id("app-status")).to_have_text("app not running")
    screenshot(page, "files", tmp_path)

    # the list of this browser's sessions, with status and cost
    page.get_by_test_id("nav-sessions").click()
    row = page.get_by_test_id("session-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("session-row-status")).to_have_text("complete")
    expect(row.get_by_test_id("session-row-cost")).to_have_text(re.compile(r"\$0\.\d+"))
    assert cost_of(row.get_by_test_id("session-row-cost").inner_text()) > 0
    screenshot(page, "session-list", tmp_path)

    # the page holds this session's token, and no server secret
    admin = server.orch.signer.token(Purpose.ADMIN)
    stored = json.dumps(page.evaluate("({...localStorage})"))
    assert admin not in stored
    assert admin not in page.content()
    results = [str(r.tool_results()) for r in server.models.main_requests("web-tools")]
    assert any("hello" in text for text in results)


def test_a_question_with_options(page: Page, server: LiveServer, tmp_path: Path) -> None:
    start_session(page, "web-ask", "ask me", freeform=True)
    panel = page.locator("[data-testid=gate-panel][data-gate-kind=ask_user_question]")
    questions = panel.get_by_test_id("question")
    expect(questions).to_have_count(2)
    expect(questions.nth(0)).to_contain_text("Which color?")
    submit = panel.get_by_test_id("question-submit")
    expect(submit).to_be_disabled()
    questions.nth(0).locator("[data-label=red]").click()
    questions.nth(0).locator("[data-label=blue]").click()  # one of: replaces red
    pressed = questions.nth(0).locator("[aria-pressed=true]")
    expect(pressed).to_have_count(1)
    expect(pressed).to_have_attribute("data-label", "blue")
    expect(submit).to_be_disabled()  # the second question has no answer yet
    questions.nth(1).locator("[data-label=small]").click()
    questions.nth(1).locator("[data-label=large]").click()  # many of: both
    expect(questions.nth(1).locator("[aria-pressed=true]")).to_have_count(2)
    screenshot(page, "question", tmp_path)
    submit.click()
    expect(panel).to_have_count(0)
    expect(page.get_by_test_id("event-assistant").last).to_have_text("Blue, small and large.")
    expect(page.get_by_test_id("event-gate-resolved")).to_contain_text("blue; small, large")
    answered = str(server.models.main_requests("web-ask")[1].tool_results())
    assert '"Which color?"="blue"' in answered
    assert '"Which sizes?"="small, large"' in answered


def test_the_timeline_resumes_after_dropped_connections(
    pages: Pages, server: LiveServer, tmp_path: Path
) -> None:
    proxy = DroppingProxy(server.url)
    try:
        page = pages.open(proxy.url)
        streams: list[Request] = []
        page.on("request", lambda r: streams.append(r) if "/events?" in r.url else None)
        sid = start_session(page, "web-resume", "say hi", freeform=True)
        expect(page.get_by_test_id("event-session-end")).to_have_count(1)
        expect(page.get_by_test_id("stream-state")).to_have_text("live")
        before = entries(page)
        last_id = before[-1]["id"]
        token = page.evaluate(f"JSON.parse(localStorage['orchestrator:session-tokens'])['{sid}']")

        # 1. the network cuts the stream; the agent goes on meanwhile (the message
        #    goes straight to the server); EventSource reconnects with Last-Event-ID
        assert proxy.drop() > 0
        expect(page.get_by_test_id("stream-state")).to_have_text("reconnecting")
        iterate(server, sid, token, "again")
        expect(page.get_by_text("Second reply.")).to_have_count(1)
        expect(page.get_by_test_id("stream-state")).to_have_text("live")
        assert streams[-1].all_headers().get("last-event-id") == last_id
        assert "offset=" not in streams[-1].url

        # 2. the server refuses the reconnects for a while: EventSource gives up,
        #    and the page reconnects itself, from ?offset=<last id>, with backoff
        failing = True

        def refuse(route: Route) -> None:
            if failing:
                route.fulfill(status=503, body="down for a moment")
            else:
                route.continue_()

        page.route("**/events?*", refuse)
        last_id = entries(page)[-1]["id"]
        seen = len(streams)
        proxy.drop()
        deadline = time.monotonic() + 30
        while len(streams) < seen + 3 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(streams) >= seen + 3, "no retries"
        failing = False
        page.get_by_test_id("iterate-input").fill("more")
        page.get_by_test_id("iterate-send").click()
        expect(page.get_by_text("Third reply.")).to_have_count(1)
        expect(page.get_by_test_id("stream-state")).to_have_text("live")
        assert f"offset={last_id}" in streams[-1].url
        page.unroute("**/events?*")

        # nothing twice, nothing lost
        after = entries(page)
        keys = [entry["key"] for entry in after]
        assert len(keys) == len(set(keys)), keys
        assert after[: len(before)] == before
        texts = [entry["text"] for entry in after if entry["type"] == "assistant"]
        assert [t.splitlines()[-1] for t in texts] == [
            "First reply.",
            "Second reply.",
            "Third reply.",
        ]
        assert len([e for e in after if e["type"] == "user"]) == 3
        assert len([e for e in after if e["type"] == "end"]) == 3
        # and a reload replays the same timeline from the start
        page.reload()
        expect(page.get_by_test_id("event-session-end")).to_have_count(3)
        replayed = entries(page)
        assert [(e["key"], e["type"]) for e in replayed] == [(e["key"], e["type"]) for e in after]
    finally:
        proxy.close()


def iterate(server: LiveServer, session_id: str, token: str, text: str) -> None:
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
    try:
        connection.request(
            "POST",
            f"/api/sessions/{session_id}/iterate",
            body=json.dumps({"request": text}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
    finally:
        connection.close()


def add_agent(page: Page, name: str, role: str, key: str, prompt: str = "") -> None:
    form = page.get_by_test_id("add-agent")
    form.get_by_test_id("agent-name").fill(name)
    form.get_by_test_id("agent-role").select_option(role)
    form.get_by_test_id("agent-prompt").fill(prompt)
    form.get_by_test_id("agent-api-key").fill(key)
    form.get_by_test_id("agent-add").click()
    expect(page.locator(f"[data-testid=participant][data-name={name}]")).to_have_count(1)


def test_a_room_of_two_agents(pages: Pages, server: LiveServer, tmp_path: Path) -> None:
    page = pages.open(server.url)
    page.goto("/")
    page.get_by_test_id("nav-rooms").click()
    page.get_by_test_id("room-name").fill("pair")
    page.get_by_test_id("room-max-rounds").fill("2")
    page.get_by_test_id("room-create").click()
    page.wait_for_url(re.compile(r".*#/room/[0-9a-f-]+$"))
    room_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("room-title")).to_have_text("pair")
    expect(page.get_by_test_id("room-state")).to_have_text("active")
    invite = page.get_by_test_id("invite-link")
    expect(invite).to_have_value(re.compile(rf"^{re.escape(server.url)}/#/join/{room_id}/\S+$"))
    link = invite.input_value()

    # a person talks to the (still empty) room, then adds two agents with roles
    page.get_by_test_id("room-message-from").fill("pat")
    page.get_by_test_id("room-message-input").fill("Hello team")
    page.get_by_test_id("room-message-send").click()
    hello = page.get_by_test_id("room-message").filter(has_text="Hello team")
    expect(hello.get_by_test_id("message-from")).to_have_text("pat")
    add_agent(page, "bob", "reviewer", "bob")
    add_agent(page, "alice", "coder", "alice", prompt="Start.")
    people = page.get_by_test_id("participant")
    expect(people).to_have_count(2)
    expect(people.nth(0)).to_contain_text("bob reviewer")
    expect(people.nth(1)).to_contain_text("alice coder")

    # alice's message waits for a person: edit it, and it goes to bob
    held = page.locator("[data-testid=gate-panel][data-gate-kind=outbound_message]")
    expect(held.get_by_test_id("outbound-body")).to_have_text("GATE: may I deploy today?")
    expect(held).to_contain_text("alice")
    screenshot(page, "room-gate", tmp_path)
    held.get_by_test_id("outbound-edit").click()
    held.get_by_test_id("outbound-edit-body").fill("May I deploy tomorrow?")
    held.get_by_test_id("outbound-send-edited").click()
    expect(held).to_have_count(0)

    # the agents' messages, then the room stops at its round limit
    messages = page.get_by_test_id("room-message")
    expect(messages).to_have_count(3)
    expect(messages.get_by_test_id("message-from")).to_have_text(["pat", "alice", "bob"])
    expect(messages.nth(1)).to_contain_text("→ @bob")
    expect(messages.nth(1).get_by_test_id("message-body")).to_have_text("May I deploy tomorrow?")
    expect(messages.nth(2).get_by_test_id("message-body")).to_have_text(
        "Sounds good: tomorrow it is."
    )
    stop = page.get_by_test_id("room-stop-reason")
    expect(stop).to_have_attribute("data-reason", "max_rounds")
    expect(page.get_by_test_id("room-state")).to_have_text("closed")
    expect(page.get_by_test_id("room-rounds")).to_have_text("round 2 of 2")

    # a participant's own events, read-only with the room token
    page.locator(
        "[data-testid=participant][data-name=alice] [data-testid=participant-open]"
    ).click()
    pane = page.get_by_test_id("participant-pane")
    expect(pane.get_by_test_id("participant-pane-title")).to_have_text("alice (coder)")
    expect(pane.get_by_test_id("event-assistant")).to_have_text(
        [READY, "@bob GATE: may I deploy today?"]
    )
    expect(pane.get_by_test_id("event-gate-resolved")).to_contain_text("edited and sent")
    expect(page).to_have_url(re.compile(rf"#/room/{room_id}/session/[0-9a-f-]+$"))
    screenshot(page, "room", tmp_path)

    # someone else opens the invite link: the room token, the same room
    other = pages.open(server.url)
    other.goto(link)
    other.wait_for_url(re.compile(rf".*#/room/{room_id}$"))
    expect(other.get_by_test_id("room-message")).to_have_count(3)
    expect(other.get_by_test_id("room-stop-reason")).to_have_attribute("data-reason", "max_rounds")
    expect(other.get_by_test_id("participant")).to_have_count(2)
    assert other.evaluate("Object.keys(JSON.parse(localStorage['orchestrator:room-tokens']))") == [
        room_id
    ]
    screenshot(other, "room-invited", tmp_path)
    # a wrong code is refused
    other.goto(f"/#/join/{room_id}/AAAA-AAAA")
    expect(other.get_by_test_id("join-status")).to_have_text("No room matches this invite link.")


def raw_get(server: LiveServer, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET sent exactly as written (no client-side
    normalisation of ``..``)."""
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def test_the_static_routes(server: LiveServer) -> None:
    status, kind, body = raw_get(server, "/")
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert '<script type="module" src="/static/app.js">' in body
    for name, expected in (
        ("app.js", "text/javascript; charset=utf-8"),
        ("markdown.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ):
        assert raw_get(server, f"/static/{name}")[:2] == (200, expected)
    # client-side routes get the page; files, the API and escapes do not
    assert raw_get(server, "/session/abc")[:2] == (200, "text/html; charset=utf-8")
    for path in (
        "/static/nope.js",
        "/static/../__init__.py",
        "/static/%2e%2e/__init__.py",
        "/static/..%2f__init__.py",
        "/static/%2e%2e%2f%2e%2e%2fapi/app.py",
        "/favicon.ico",
        "/api/nope",
        "/api",
    ):
        status, kind, body = raw_get(server, path)
        assert (status, kind, json.loads(body)) == (
            404,
            "application/json",
            {"error": "Not found"},
        ), path
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    try:
        connection.request("POST", "/api/nope", body=b"{}")
        assert connection.getresponse().status == 404
    finally:
        connection.close()
    # the page's own policy: scripts, styles and requests from this origin only
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    try:
        connection.request("GET", "/")
        policy = connection.getresponse().getheader("Content-Security-Policy", "")
    finally:
        connection.close()
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy


ALLOWED_TAGS = {
    "A", "BLOCKQUOTE", "BR", "CODE", "DEL", "EM", "H1", "H2", "H3", "H4", "H5", "H6",
    "HR", "LI", "OL", "P", "PRE", "STRONG", "UL",
}  # fmt: skip
PIECES = [
    "<", ">", "&", '"', "'", "`", "```", "*", "**", "_", "__", "~~", "[", "]", "(", ")",
    "#", "# ", "- ", "1. ", "> ", "\n", "\n\n", "  ", "javascript:", "https://x.y/", "http://",
    "<script>", "onerror=", "<img src=x>", "a", "b c", "&amp;", "\\", "|", "=", "data:",
]  # fmt: skip


def test_the_markdown_renderer_is_safe(page: Page) -> None:
    page.goto("/")
    rng = random.Random(8)
    samples = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30))) for _ in range(400)]
    samples += [
        "[x](javascript:alert(1))",
        '[x](https://a.b/"onmouseover="alert(1))',
        "<script>alert(1)</script>",
        "```\n<img src=x onerror=alert(1)>\n```",
    ]
    found: dict[str, Any] = page.evaluate(
        """async (samples) => {
            const { renderMarkdown } = await import("/static/markdown.js");
            const tags = new Set(), attrs = new Set(), hrefs = new Set();
            for (const text of samples) {
                const box = document.createElement("div");
                box.innerHTML = renderMarkdown(text);
                for (const el of box.querySelectorAll("*")) {
                    tags.add(el.tagName);
                    for (const a of el.attributes) attrs.add(a.name);
                    if (el.tagName === "A") hrefs.add(el.getAttribute("href"));
                }
            }
            const sample = renderMarkdown(
                "# Title\\n\\nSome **bold**, *it*, `<b>` and [a link](https://example.com/a_b).\\n"
                + "\\n- one\\n- two\\n  1. nested\\n\\n```js\\nlet x = '<y>';\\n```"
            );
            return { tags: [...tags], attrs: [...attrs], hrefs: [...hrefs], sample };
        }""",
        samples,
    )
    assert set(found["tags"]) <= ALLOWED_TAGS, found["tags"]
    assert set(found["attrs"]) <= {"href", "target", "rel", "class", "start"}, found["attrs"]
    assert all(re.match(r"https?://", href) for href in found["hrefs"]), found["hrefs"]
    assert found["sample"] == (
        "<h1>Title</h1>\n"
        "<p>Some <strong>bold</strong>, <em>it</em>, <code>&lt;b&gt;</code> and "
        '<a href="https://example.com/a_b" target="_blank" rel="noopener noreferrer">'
        "a link</a>.</p>\n"
        "<ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul>\n"
        '<pre><code class="language-js">let x = &#39;&lt;y&gt;&#39;;</code></pre>'
    )


def test_a_resumed_stream_shows_each_event_once(page: Page) -> None:
    """The stream's ids: the last record of an append has the offset after the
    append, the others the offset before it (that of the record before them). A
    resume from an id gives that append again, whole; the page shows each event once."""
    page.goto("/")
    shown: list[str] = page.evaluate(
        """async () => {
            const { LiveStream } = await import("/static/live.js");
            const shown = [];
            const stream = new LiveStream("/nowhere", (event, id, key) =>
                shown.push(`${event.n}@${key}`));
            const send = (id, n) =>
                stream.receive({ lastEventId: id, data: JSON.stringify({ n }) });
            // appends: [1 2 3] ends at 10, [4] ends at 20, [5 6 7] ends at 30
            send("-1", 1); send("-1", 2); send("10", 3); send("20", 4);
            send("20", 5); send("20", 6);          // the connection drops mid-append
            stream.resumed();                      // Last-Event-ID: 20
            send("20", 5); send("20", 6); send("30", 7);
            stream.resumed();                      // a resume at the end of an append
            send("30", 8); send("40", 9);
            stream.resumed();                      // a server that resumes too early
            send("-1", 1); send("10", 3); send("30", 7); send("50", 10);
            send("50", "bad json is skipped");
            stream.receive({ lastEventId: "60", data: "{not json" });
            return shown;
        }"""
    )
    assert shown == [
        "1@-1/1",
        "2@-1/2",
        "3@10/0",
        "4@20/0",
        "5@20/1",
        "6@20/2",
        "7@30/0",
        "8@30/1",
        "9@40/0",
        "10@50/0",
        "bad json is skipped@50/1",
    ]
