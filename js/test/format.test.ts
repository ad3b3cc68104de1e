import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDuration, progressText, statusColour } from "../src/format";

test("formatDuration reads like DIGITS' ETA", () => {
  assert.equal(formatDuration(42), "42s");
  assert.equal(formatDuration(187), "3m 07s");
  assert.equal(formatDuration(3720), "1h 02m");
  assert.equal(formatDuration(-1), "");
  assert.equal(formatDuration(Number.NaN), "");
});

test("progressText clamps and tolerates an unknown total", () => {
  assert.equal(progressText(12, 40), "12 / 40 (30%)");
  assert.equal(progressText(50, 40), "50 / 40 (100%)");
  assert.equal(progressText(3, 0), "3");
});

test("statusColour knows every DIGITS status", () => {
  for (const s of ["Initialized", "Waiting", "Running", "Done", "Aborted", "Error"]) {
    assert.match(statusColour(s), /^#[0-9a-f]{6}$/);
  }
  assert.equal(statusColour("Done"), "#5cb85c");
});
