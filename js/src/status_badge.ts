// A status badge (status, done / total, ETA) as an anywidget ESM module. No class of digits_widgets uses it:
// its only Python side is the Badge class that tests/browser/test_smoke.py defines inline, to check that an
// anywidget bundle built here renders in JupyterLab (pyproject's ensured-targets lists the bundle too).
// The views colour statuses with digits_widgets/ui/formats.py; format.ts's colours serve this badge alone.
import type { RenderProps } from "@anywidget/types";
import { formatDuration, progressText, statusColour } from "./format";

interface BadgeModel {
  status: string;
  done: number;
  total: number;
  eta: number;
}

function render({ model, el }: RenderProps<BadgeModel>): () => void {
  const badge = document.createElement("span");
  badge.className = "dw-status-badge";
  badge.style.cssText =
    "display:inline-block;padding:2px 8px;border-radius:4px;color:white;font:12px sans-serif";
  const detail = document.createElement("span");
  detail.className = "dw-status-detail";
  detail.style.cssText = "margin-left:8px;font:12px sans-serif";
  el.append(badge, detail);

  const update = () => {
    const status = model.get("status");
    badge.textContent = status;
    badge.style.background = statusColour(status);
    const parts: string[] = [];
    const total = model.get("total");
    if (total > 0) parts.push(progressText(model.get("done"), total));
    const eta = formatDuration(model.get("eta"));
    if (eta && status === "Running") parts.push(`ETA ${eta}`);
    detail.textContent = parts.join(" · ");
  };
  update();
  model.on("change", update);
  return () => model.off("change", update);
}

export default { render };
