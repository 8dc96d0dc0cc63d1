import { describe, expect, it } from 'vitest';
import { nodeKind } from './nodeKind.js';

describe('nodeKind', () => {
  it('treats trigger-prefixed and _trigger-suffixed types as triggers', () => {
    expect(nodeKind('trigger')).toBe('trigger');
    expect(nodeKind('trigger_event')).toBe('trigger');
    expect(nodeKind('segment_trigger')).toBe('trigger');
  });

  it('treats the control-flow types as flow', () => {
    for (const type of ['delay', 'wait_for_event', 'condition', 'split', 'goal', 'exit']) {
      expect(nodeKind(type)).toBe('flow');
    }
  });

  it('treats everything else as an action', () => {
    expect(nodeKind('send_message')).toBe('action');
    expect(nodeKind('delay_until')).toBe('action');
    expect(nodeKind(undefined)).toBe('action');
  });

  it('prefers a valid kind in config over the type name', () => {
    expect(nodeKind('send_message', { kind: 'flow' })).toBe('flow');
    expect(nodeKind('delay', { kind: 'bogus' })).toBe('flow');
  });
});
