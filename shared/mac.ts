/** `52:54:00:AB:…` or `52-54-00-ab-…` → `52:54:00:ab:…` (the one form MACs are compared in); null when it is not a MAC. */
export function normaliseMac(s: string): string | null {
  const m = s.trim().toLowerCase().replaceAll('-', ':');
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m) ? m : null;
}
