// Behaviour every page shares, wired by data attributes rather than inline handlers (the
// Content-Security-Policy runs no inline script): a form asks before it submits (data-confirm), a
// select submits its form when it changes (data-autosubmit), a field to copy selects itself
// (data-select-all), and a link opens the <details> it names (data-opens).
(function () {
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("change", (event) => {
    const select = event.target.closest("[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });
  document.addEventListener("click", (event) => {
    const field = event.target.closest("[data-select-all]");
    if (field) field.select();
    const opener = event.target.closest("[data-opens]");
    const details = opener && document.getElementById(opener.dataset.opens);
    if (details) details.open = true;
  });
})();
