// Small helpers: DOM building (text only, never HTML strings) and formatting.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

// Dollars with cents; under a cent (a cheap script call) keeps four places so it is not "$0.00".
const DOLLARS = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const MILLS = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 4 });
export function usd(amount) {
  if (amount === null || amount === undefined || Number.isNaN(amount)) return "–";
  return (amount > 0 && amount < 0.01 ? MILLS : DOLLARS).format(amount);
}

export function clock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

export const ACTIVE = new Set(["pending", "generating"]);
export const TERMINAL = new Set(["completed", "failed", "timeout"]);
export const REQUEST_KEY = /^[A-Za-z0-9_-]{1,64}$/;
