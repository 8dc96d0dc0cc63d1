// The rule field of the segment pages (segments, dynamic tags, lifecycle stages): the rule builder
// (rule_builder.js) mounted on #rule-builder, the rule kept as JSON in the form's hidden "rule"
// field, and a live count of the customers it selects while the marketer edits. The problems the
// count finds are shown by the builder at their conditions.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("builder-config").textContent);
  const L = config.labels;
  const form = document.getElementById("rule-form");
  const hidden = document.getElementById("rule-input");
  const preview = {
    box: document.getElementById("rule-preview"),
    count: document.getElementById("preview-count"),
    label: document.getElementById("preview-label"),
    message: document.getElementById("preview-message"),
    sample: document.getElementById("preview-sample"),
  };
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  const el = (tag, attributes, ...children) => {
    const node = Object.assign(document.createElement(tag), attributes);
    node.append(...children.filter((child) => child !== null));
    return node;
  };

  let stored;
  try { stored = JSON.parse(hidden.value); } catch (error) { stored = null; }

  let timer = null;
  let controller = null;
  const builder = window.CdpRuleBuilder.mount(document.getElementById("rule-builder"), {
    config,
    rule: stored,
    problems: config.problems || [],
    onChange(rule) {
      hidden.value = JSON.stringify(rule);
      clearTimeout(timer);
      timer = setTimeout(count, 400);
    },
  });
  // The field holds the rule as the builder edits it (a group at the root) from the start.
  hidden.value = JSON.stringify(builder.rule);

  function showState(state, message) {
    preview.box.dataset.state = state;
    preview.message.textContent = message || "";
  }

  async function count() {
    controller?.abort();
    const rule = builder.rule;
    if (!window.CdpRuleBuilder.hasCondition(rule)) {
      // Nothing to count; the problems the last save found (an empty group) stay shown.
      preview.count.textContent = "—";
      preview.label.textContent = "";
      preview.sample.replaceChildren();
      showState("idle", L.no_conditions);
      return;
    }
    controller = new AbortController();
    showState("counting", L.counting);
    preview.box.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(config.previewUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
        body: JSON.stringify({ rule }),
        credentials: "same-origin",
        signal: controller.signal,
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 400 && Array.isArray(body.errors)) {
        builder.update({ problems: body.errors });
        showState("invalid", L.fix_first);
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      builder.update({ problems: [] });
      preview.count.textContent = numbers.format(body.count);
      preview.label.textContent = L.matching;
      preview.sample.replaceChildren(
        ...body.sample.map((customer) => el("li", {},
          el("a", { href: config.customerUrl.replace(/0\/$/, `${customer.id}/`) }, customer.name || L.unnamed),
          customer.phone ? el("span", { className: "muted" }, ` ${customer.phone}`) : null))
      );
      if (body.sample.length) preview.sample.prepend(el("li", { className: "muted preview__sample-title" }, L.sample));
      showState("counted", body.count ? "" : L.nobody);
    } catch (error) {
      if (error.name === "AbortError") return;
      showState("failed", L.failed);
    } finally {
      preview.box.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", () => { hidden.value = JSON.stringify(builder.rule); });
  count();
})();
