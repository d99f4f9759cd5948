/** What any jig hands back: success, the wall (null keeps the previous one) and a log for the runlog. */
export interface JigResult {
  ok: boolean;
  wall: Record<string, unknown> | null;
  log: string;
}
