import { z } from 'zod';

/** Every message on the bus travels in this envelope. */
export const envelopeSchema = z.object({
  id: z.string().min(1).max(200),
  type: z.string().min(1).max(200),
  time: z.string().datetime(),
  source: z.string().min(1).max(200),
  correlationId: z.string().min(1).max(200),
  causationId: z.string().max(200).nullable(),
  data: z.unknown(),
});
export type Envelope<T = unknown> = Omit<z.infer<typeof envelopeSchema>, 'data'> & { data: T };

/** What a caller may say about where a message came from. */
export interface Lineage {
  correlationId?: string;
  causationId?: string | null;
}

/** Lineage for a message caused by `env`: same correlation, caused by its id. */
export const causedBy = (env: Pick<Envelope, 'id' | 'correlationId'>): Lineage => ({
  correlationId: env.correlationId,
  causationId: env.id,
});
