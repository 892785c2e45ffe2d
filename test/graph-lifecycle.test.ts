/** The graph runtime's lifecycle state machine: the transitions it allows, and those it refuses. */
import { describe, expect, it } from 'vitest';
import { GraphLifecycle, type GraphState } from '../scheduler/graph-lifecycle.ts';

function walk(...states: GraphState[]): GraphLifecycle {
  const lifecycle = new GraphLifecycle();
  for (const state of states) lifecycle.to(state);
  return lifecycle;
}

describe('GraphLifecycle', () => {
  it('starts in starting, and a deploy, a rescale, a degradation and a delete walk the diagram', () => {
    const lifecycle = walk('running', 'rescaling', 'running', 'degraded', 'running', 'stopping', 'deleting', 'stopped');
    expect(lifecycle.state).toBe('stopped');
    expect(lifecycle.live).toBe(false);
    expect(lifecycle.transitions().map((t) => t.to)).toEqual(['running', 'rescaling', 'running', 'degraded', 'running', 'stopping', 'deleting', 'stopped']);
  });

  it('refuses a transition the diagram does not have, with ERR_INTERNAL, and stays where it was', () => {
    const lifecycle = walk('running', 'stopping', 'stopped');
    expect(() => lifecycle.to('running')).toThrow(/no transition from stopped to running/);
    expect(lifecycle.state).toBe('stopped');
    expect(() => walk('deleting')).toThrow(/ERR_INTERNAL|no transition/);
    expect(() => walk('running', 'deleting')).toThrow(/no transition from running to deleting/);
  });

  it('keeps the reason of the current state, and only the last transitions', () => {
    const lifecycle = walk('running');
    lifecycle.to('degraded', 'ERR_KAFKA_UNAVAILABLE: brokers unreachable');
    expect(lifecycle.reason).toMatch(/ERR_KAFKA_UNAVAILABLE/);
    lifecycle.to('degraded', 'still unreachable');
    expect(lifecycle.reason).toBe('still unreachable');
    for (let i = 0; i < 20; i++) {
      lifecycle.to('running');
      lifecycle.to('rescaling');
    }
    expect(lifecycle.transitions()).toHaveLength(8);
    expect(lifecycle.live).toBe(true);
  });
});
