import type { NoderoleState } from '../../../shared/catalogue/index.js';

/**
 * The noderole state machine as data (reference §2.2, with DESIGN §4 decisions). Each operation lists the
 * states it may start from; `apply` in transitions.ts is the only code that changes a state.
 */
export type Operation =
  | 'commit'
  | 'todo'
  | 'block'
  | 'transition'
  | 'active'
  | 'error'
  | 'propose'
  | 'deactivate';

const all: readonly NoderoleState[] = ['error', 'active', 'todo', 'transition', 'blocked', 'proposed'];

export const legalFrom: Record<Operation, readonly NoderoleState[]> = {
  commit: ['proposed'],
  todo: all,
  block: all,
  transition: ['todo', 'active', 'transition'],
  active: ['transition'],
  // error! on a BLOCKED noderole is ignored rather than refused (reference §2.2).
  error: ['error', 'active', 'todo', 'transition', 'proposed'],
  propose: all,
  deactivate: ['error', 'active', 'todo', 'transition', 'blocked'],
};

/** Node state precedence, deterministic (DESIGN §4, #12): ERROR > TRANSITION > PROPOSED > TODO/BLOCKED > ACTIVE. */
export function nodeState(states: NoderoleState[]): 'error' | 'transition' | 'proposed' | 'todo' | 'active' {
  if (states.includes('error')) return 'error';
  if (states.includes('transition')) return 'transition';
  if (states.includes('proposed')) return 'proposed';
  if (states.includes('todo') || states.includes('blocked')) return 'todo';
  return 'active';
}
