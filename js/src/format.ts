// Pure formatting helpers shared by the front-end widgets (unit-tested in js/test).

/** Seconds as "1h 02m", "3m 07s" or "42s", the way DIGITS showed "Estimated time remaining". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m ${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

/** DIGITS status names mapped to the colours of its status labels. */
export const STATUS_COLOURS: Record<string, string> = {
  Initialized: "#777777",
  Waiting: "#f0ad4e",
  Running: "#337ab7",
  Done: "#5cb85c",
  Aborted: "#d9534f",
  Error: "#d9534f",
};

export function statusColour(status: string): string {
  return STATUS_COLOURS[status] ?? "#777777";
}

/** "12 / 40 (30%)": progress text for a bar, tolerant of an unknown total. */
export function progressText(done: number, total: number): string {
  if (!(total > 0)) return `${done}`;
  const pct = Math.floor((100 * Math.min(done, total)) / total);
  return `${done} / ${total} (${pct}%)`;
}
