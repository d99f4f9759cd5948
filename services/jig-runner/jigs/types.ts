import type { JsonObject } from '../../../shared/catalogue/json.js';
/** What any jig hands back: success, the wall (null keeps the previous one) and a log for the runlog. */
export interface JigResult {
  ok: boolean;
  wall: JsonObject | null;
  log: string;
}
