// The nua console: no build step, no library. Reads state by JSON-RPC (POST /rpc with the
// session cookie and its CSRF token) and follows the daemon's event stream (GET /events).
"use strict";

const REFRESH_MS = 5000;          // CPU and memory are sampled this often while the page is visible
const SPARK_POINTS = 60;          // five minutes of samples per service
const MAX_EVENTS = 100;           // events kept on the page
const ACTING_ROLES = new Set(["operator", "admin"]);

const $ = (id) => document.getElementById(id);
const state = { csrf: null, role: null, name: null, nextId: 1, timer: null, events: null,
                spark: new Map(), hasJobs: null, refreshing: null, again: false, logOf: null };

class SessionEnded extends Error {}

function element(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

// -- talking to the daemon ---------------------------------------------------------------------

async function post(path, body, withCsrf) {
  const headers = { "Content-Type": "application/json" };
  if (withCsrf && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" });
}

async function rpc(method, params) {
  const response = await post("/rpc", { jsonrpc: "2.0", id: state.nextId++, method, params: params || [] }, true);
  if (response.status === 401 || response.status === 403) {
    const reason = (await response.json().catch(() => ({}))).error || "your session ended";
    throw new SessionEnded(reason);
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const reply = await response.json();
  if (reply.error) {
    const error = new Error(reply.error.message);
    error.code = reply.error.code;
    throw error;
  }
  return reply.result;
}

// -- logging in and out ------------------------------------------------------------------------

function showLogin(reason) {
  stopLive();
  state.csrf = state.role = state.name = null;
  $("console").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-reason").textContent = reason || "";
  $("token").value = "";
  $("token").focus();
}

function enter(who) {
  state.csrf = who.csrf;
  state.role = who.role;
  state.name = who.name;
  $("login").hidden = true;
  $("login-error").textContent = "";
  $("console").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${who.name} (${who.role})`;
  $("logout").hidden = false;
  startLive();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await post("/login", { token: $("token").value.trim() }, false);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("login-error").textContent = body.error || `HTTP ${response.status}`;
    return;
  }
  enter(body);
}

async function logout() {
  await post("/logout", {}, true).catch(() => null);
  showLogin("You logged out.");
}

function ended(error) {
  if (error instanceof SessionEnded) {
    showLogin(`Log in again: ${error.message}`);
    return true;
  }
  return false;
}

// -- live state ----------------------------------------------------------------------------------

function startLive() {
  state.hasJobs = null;  // asked once per login: whether this daemon has jobs (cron_list)
  refresh();
  state.timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  followEvents();
}

function stopLive() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  if (state.events) state.events.close();
  state.events = null;
}

async function refresh() {
  if (state.refreshing) { state.again = true; return state.refreshing; }
  state.refreshing = (async () => {
    try {
      if (state.hasJobs === null) state.hasJobs = (await rpc("rpc_methods")).includes("cron_list");
      const status = await rpc("sys_status");
      renderStatus(status);
      renderServices(findServices(status.tree));
      if (state.hasJobs) renderJobs(await rpc("cron_list"));
      if (state.logOf) await showLog(state.logOf);
    } catch (error) {
      if (!ended(error)) $("result").textContent = `Could not read the daemon's state: ${error.message}`;
    } finally {
      state.refreshing = null;
      if (state.again) { state.again = false; refresh(); }
    }
  })();
  return state.refreshing;
}

function followEvents() {
  const source = new EventSource("/events");
  state.events = source;
  source.onopen = () => { $("events-state").textContent = "Following the event stream."; };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    addEvent(event);
    if (/^(service|actor|job|daemon)/.test(event.kind)) refresh();
  };
  source.addEventListener("missed", (message) => {
    addEvent({ time: new Date().toISOString(), kind: "missed", facts: JSON.parse(message.data) });
  });
  source.onerror = async () => {
    $("events-state").textContent = "The event stream was interrupted; reconnecting.";
    const response = await fetch("/session", { credentials: "same-origin" }).catch(() => null);
    if (response && response.status === 401) {
      const body = await response.json().catch(() => ({}));
      showLogin(`Log in again: ${body.error || "your session ended"}`);
    }
  };
}

function addEvent(event) {
  const list = $("events");
  const facts = Object.entries(event.facts || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
  const time = (event.time || "").replace("T", " ").replace(/\.\d+.*$/, "");
  list.prepend(element("li", `${time} ${event.kind} ${facts}`));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

// -- rendering -----------------------------------------------------------------------------------

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function bytes(count) {
  if (count === null || count === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = count, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function renderStatus(status) {
  const line = `daemon pid ${status.pid}, ${status.state}, up ${duration(status.uptime_s)}` +
    (status.degraded && status.degraded.length ? ` (degraded: ${status.degraded.map((d) => d.component).join(", ")})` : "");
  $("daemon-line").textContent = line;
  const tree = $("tree");
  tree.replaceChildren(treeItem(status.tree));
}

function treeItem(node) {
  const item = element("li");
  item.append(element("strong", node.id), " ", element("span", node.state, { class: `state-${node.state}` }));
  const meta = [`restarts ${node.restarts}`];
  if (node.detail && node.detail.pid) meta.push(`pid ${node.detail.pid}`);
  if (node.last_error) meta.push(`last error: ${node.last_error}`);
  item.append(" ", element("span", meta.join(", "), { class: "meta" }));
  if (node.children && node.children.length) {
    const list = element("ul");
    for (const child of node.children) list.append(treeItem(child));
    item.append(list);
  }
  return item;
}

function findServices(tree) {
  const services = (tree.children || []).find((child) => child.id === "services");
  return services ? (services.children || []) : [];
}

function sparkline(name, cpu) {
  const points = state.spark.get(name) || [];
  if (cpu !== null && cpu !== undefined) points.push(cpu);
  while (points.length > SPARK_POINTS) points.shift();
  state.spark.set(name, points);
  const width = 120, height = 24, top = Math.max(1, ...points);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  const last = points.length ? points[points.length - 1] : 0;
  svg.setAttribute("aria-label", `CPU over the last ${points.length} samples, now ${last.toFixed(1)} %, peak ${Math.max(0, ...points).toFixed(1)} %`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  const step = width / (SPARK_POINTS - 1);
  const drawn = points.length === 1 ? [points[0], points[0]] : points;  // one sample: a level stroke
  line.setAttribute("points", drawn.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

// Which button has the keyboard focus, so that a refresh replacing the rows gives it back.
function focusedAction() {
  const active = document.activeElement;
  const row = active && active.closest ? active.closest("tr[data-service]") : null;
  return row && active.dataset.action ? [row.dataset.service, active.dataset.action] : null;
}

function refocus(focused) {
  if (!focused) return;
  const again = document.querySelector(`tr[data-service="${CSS.escape(focused[0])}"] button[data-action="${focused[1]}"]`);
  if (again) again.focus();
}

function renderServices(services) {
  const focused = focusedAction();
  const body = $("services").querySelector("tbody");
  $("no-services").hidden = services.length > 0;
  const rows = [];
  for (const node of services) {
    const name = node.id.replace(/^service:/, "");
    const d = node.detail || {};
    const shown = d.state || node.state;
    const row = element("tr", null, { "data-service": name });
    row.append(
      element("th", name, { scope: "row" }),
      element("td", shown, { class: `state-${shown}`, "data-field": "state" }),
      element("td", d.pid ?? "", { class: "num", "data-field": "pid" }),
      element("td", duration(d.uptime_s), { class: "num", "data-field": "uptime" }),
      element("td", d.restarts ?? node.restarts, { class: "num", "data-field": "restarts" }),
      element("td", d.cpu_percent === null || d.cpu_percent === undefined ? "" : `${d.cpu_percent.toFixed(1)} %`, { class: "num" }),
      element("td", bytes(d.rss_bytes), { class: "num" }),
    );
    const spark = element("td");
    spark.append(sparkline(name, d.cpu_percent));
    row.append(spark);
    const actions = element("td", null, { class: "actions" });
    if (ACTING_ROLES.has(state.role)) {
      for (const verb of ["start", "stop", "restart"]) {
        const button = element("button", verb[0].toUpperCase() + verb.slice(1), { type: "button", "aria-label": `${verb} ${name}`, "data-action": verb });
        button.addEventListener("click", () => act(`service_${verb}`, name, `${verb} the service ${name}`));
        actions.append(button);
      }
      const logs = element("button", "Log", { type: "button", "aria-label": `show the log of ${name}`, "data-action": "log" });
      logs.addEventListener("click", () => { state.logOf = name; showLog(name); });
      actions.append(logs);
    }
    row.append(actions);
    rows.push(row);
  }
  body.replaceChildren(...rows);
  refocus(focused);
}

function renderJobs(page) {
  // cron_list's page: {items: [{name, config: {schedule, ...}, paused, next_fire_at, last_status, last_run_at}], next}
  $("jobs-section").hidden = false;
  const rows = (page.items || []).map((job) => {
    const row = element("tr", null, { "data-job": job.name });
    const schedule = (job.config && job.config.schedule) || "";
    const next = job.paused ? "paused" : (job.next_fire_at || "").replace("T", " ").replace(/\.\d+/, "");
    const last = job.last_status ? `${job.last_status} ${(job.last_run_at || "").replace("T", " ").replace(/\.\d+/, "")}` : "never run";
    row.append(element("th", job.name, { scope: "row" }), element("td", schedule), element("td", next),
               element("td", last, { class: `state-${job.last_status || "none"}` }));
    const actions = element("td", null, { class: "actions" });
    if (ACTING_ROLES.has(state.role)) {
      const run = element("button", "Run now", { type: "button", "aria-label": `run the job ${job.name} now` });
      run.addEventListener("click", () => act("cron_run_now", job.name, `run the job ${job.name} now`));
      actions.append(run);
    }
    row.append(actions);
    return row;
  });
  $("jobs").querySelector("tbody").replaceChildren(...rows);
}

async function showLog(name) {
  try {
    const reply = await rpc("service_logs", [name, 50]);
    $("log-section").hidden = false;
    $("log-name").textContent = name;
    $("log").textContent = reply.lines.join("\n");
  } catch (error) {
    if (!ended(error)) $("result").textContent = `Could not read the log of ${name}: ${error.message}`;
  }
}

// -- actions, each confirmed ---------------------------------------------------------------------

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = `Do you want to ${text}?`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

async function act(method, name, text) {
  if (!(await confirmAction(text))) {
    $("result").textContent = `Cancelled: ${text}.`;
    return;
  }
  $("result").textContent = `Working: ${text}…`;
  try {
    const reply = await rpc(method, [name]);
    const detail = reply && reply.state ? ` (now ${reply.state})` : "";
    $("result").textContent = `Done: ${text}${detail}.`;
    $("result").className = "";
  } catch (error) {
    if (ended(error)) return;
    $("result").textContent = `Failed: ${text}: ${error.message}`;
    $("result").className = "failed";
  }
  refresh();
}

// -- start ---------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  const response = await fetch("/session", { credentials: "same-origin" }).catch(() => null);
  if (response && response.ok) enter(await response.json());
  else showLogin("");
});
