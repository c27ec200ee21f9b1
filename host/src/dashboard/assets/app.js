// The dashboard page: renders each state the server sends over /events.
// Everything from the lattice is shown as text (textContent), never as HTML.
"use strict";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tableId, items, toCells) {
  const body = document.querySelector(`#${tableId} tbody`);
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    toCells(tr, item);
    return tr;
  });
  body.replaceChildren(...rows);
}

function labels(map) {
  return Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

function render(state) {
  document.getElementById("lattice").textContent = state.lattice;
  document.getElementById("host-count").textContent = state.hosts.length;
  document.getElementById("workload-count").textContent = state.workloads.length;
  document.getElementById("provider-count").textContent = state.providers.length;
  fill("hosts", state.hosts, (tr, h) => {
    tr.dataset.host = h.id;
    cell(tr, h.id, "id");
    cell(tr, labels(h.labels));
    cell(tr, h.workloads.join(", ") +
      (h.workload_count > h.workloads.length ? ` … (${h.workload_count} in all)` : ""));
    cell(tr, `${h.instances_in_use}/${h.max_instances}`);
    cell(tr, h.domain || "hub");
    cell(tr, h.version);
  });
  fill("workloads", state.workloads, (tr, w) => {
    tr.dataset.workload = w.name;
    const healthy = w.running >= w.desired;
    cell(tr, w.name, "id");
    cell(tr, w.version);
    cell(tr, `${w.running}/${w.desired}`, healthy ? "ok" : "short").dataset.state = healthy ? "ok" : "short";
    cell(tr, w.replicas.map((r) => `${r.host} (${r.state})`).join(", "));
    cell(tr, w.last_error || "", "error");
  });
  fill("providers", state.providers, (tr, p) => {
    tr.dataset.provider = p.name;
    cell(tr, p.name, "id");
    cell(tr, p.interfaces.join(", "));
    cell(tr, String(p.replicas));
    cell(tr, String(p.in_flight));
    cell(tr, p.version);
  });
  const events = document.getElementById("events");
  events.replaceChildren(...state.events.map((e) => {
    const li = document.createElement("li");
    li.className = e.kind;
    const time = document.createElement("time");
    time.textContent = new Date(e.at).toLocaleTimeString();
    li.append(time, " ", e.message);
    return li;
  }));
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("/events");
  source.addEventListener("state", (event) => {
    render(JSON.parse(event.data));
    status.textContent = "live";
    status.className = "state live";
  });
  // EventSource reconnects by itself; say so meanwhile.
  source.onerror = () => {
    status.textContent = "reconnecting…";
    status.className = "state offline";
  };
}

connect();
