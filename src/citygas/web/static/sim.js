// Keeps a simulated meter's page live: polls the meter's state and updates the LCD and the facts, so a
// person watching the page sees the credit run down while the household cooks.
const meter = document.querySelector("[data-state-url]");
if (meter) {
  const url = meter.dataset.stateUrl;
  const lcd = meter.querySelector(".lcd");
  async function refresh() {
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const state = await response.json();
      lcd.replaceChildren(...state.lcd.map((line) => {
        const div = document.createElement("div");
        div.className = "lcd-line";
        div.textContent = line;
        return div;
      }));
      for (const el of document.querySelectorAll("[data-field]")) {
        const value = state[el.dataset.field];
        el.textContent = Array.isArray(value) ? (value.join(", ") || "none") : String(value);
      }
    } catch (_) {
      // Offline or restarting: keep showing the last state.
    }
  }
  setInterval(refresh, 2000);
}
