/**
 * Each part keeps its own records in an agent's wallet, under categories it registered: the agent
 * store no longer names recovery's, and no category can belong to two parts.
 */
import { describe, expect, it } from 'vitest';
import { CATEGORIES, categoryOwner, registerCategories } from '../../src/agent/agent-store.js';
import { RECOVERY_CATEGORIES } from '../../src/recovery/categories.js';

describe('wallet record categories', () => {
  it('belong to the part that registered them, the agent and recovery apart', () => {
    for (const category of Object.values(CATEGORIES)) expect(categoryOwner(category)).toBe('agent');
    for (const category of Object.values(RECOVERY_CATEGORIES)) expect(categoryOwner(category)).toBe('recovery');
    const all = [...Object.values(CATEGORIES), ...Object.values(RECOVERY_CATEGORIES)];
    expect(new Set(all).size).toBe(all.length);
  });

  it('refuses a category another part registered, and lets a part name its own again', () => {
    expect(() => registerCategories('intruder', { mine: CATEGORIES.connection })).toThrow(/already belongs to agent/);
    expect(categoryOwner(CATEGORIES.connection)).toBe('agent');
    expect(registerCategories('recovery', { again: RECOVERY_CATEGORIES.heldShare })).toEqual({ again: 'agent.held-share' });
  });
});
